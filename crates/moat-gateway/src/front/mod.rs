//! Fronts: how clients reach the router. [`http`] is the Streamable HTTP endpoint of
//! `moat gateway`; [`stdio`] is the newline-delimited stdio of `moat wrap`.

pub mod http;
pub mod resume;
pub mod stdio;
pub mod tls;
