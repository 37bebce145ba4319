//! Moat's detection engine: pure functions from tool metadata or text to [`Finding`]s.
//!
//! No I/O, no async, no globals: this crate is fuzzed and benchmarked alone, and the
//! gateway, the wrapper and the scanner all call the same code.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod finding;

pub use finding::{Finding, Owasp, Severity};
