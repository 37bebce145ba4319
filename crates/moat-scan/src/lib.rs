//! `moat scan`: find every MCP server configured on a machine, check each definition
//! statically, optionally connect to each server and check what it offers, and report.
//!
//! The pipeline is discovery ([`discover`]) → static checks ([`checks`]) → live checks
//! ([`live`], opt-in because it starts servers) → suppressions ([`ignore`]) → a
//! [`report::Report`] rendered as a table, JSON or SARIF. Findings are
//! [`moat_detect::Finding`]s placed on a client, server and file ([`model::ScanFinding`]),
//! so the scanner's table, its SARIF and the gateway's audit log speak of the same thing.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod analyze;
pub mod checks;
pub mod clients;
pub mod discover;
#[doc(hidden)]
pub mod fixture;
pub mod ignore;
pub mod live;
pub mod model;
pub mod parse;
pub mod pins;
pub mod registry;
pub mod report;
pub mod rules;
pub mod scan;
pub mod secrets;

pub use clients::{Os, Roots};
pub use discover::{discover, DiscoverOptions, Inventory};
pub use model::{Client, ConfigFile, ScanFinding, Scope, ServerEntry, Transport};
pub use report::Report;
pub use scan::{run, ScanError, ScanOptions};
