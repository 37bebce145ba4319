//! MCP on the wire: JSON-RPC envelopes that keep the bytes they do not need to change,
//! protocol versions, stdio framing, Server-Sent Events, and connections to upstream servers.
//!
//! Nothing here knows about guards or policy; the gateway and the scanner build on it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod connection;
pub mod jsonrpc;
pub mod limits;
pub mod raw;
pub mod sse;
pub mod transport;
pub mod version;

pub use connection::{Connection, ConnectionError, Inbound};
pub use jsonrpc::{Id, Message, MessageKind, ParseError};
pub use limits::Limits;
pub use version::ProtocolVersion;
