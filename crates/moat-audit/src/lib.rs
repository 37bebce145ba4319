//! Moat's audit log: one record per gateway decision, hash-chained, sealed with Ed25519,
//! written to the store and/or a JSON-lines file, and verifiable offline.
//!
//! # The shape of it
//!
//! The gateway builds an [`AuditEvent`] for every decision and hands it to [`AuditLog::append`].
//! That is an enqueue on a bounded channel: one writer task owns the chains and the sinks,
//! takes everything queued at once (group commit), numbers the records, links each to the
//! one before it, writes the batch to every sink with one write and one fsync (or one SQLite
//! transaction), and only then acknowledges. With `required = true` the caller waits for
//! that acknowledgement and refuses its call on an error; otherwise it does not wait.
//!
//! # The chain
//!
//! A record's hash is `SHA-256("moat-audit-v1 record\n" || body)`, where `body` is the
//! record's canonical JSON (RFC 8785) exactly as stored, including `prev`, the hash of the
//! record before it. Every `seal_every` records or `seal_interval`, the writer signs the
//! head of the chain with Ed25519 ([`Seal`]). Editing a record breaks its hash; deleting one
//! leaves a gap in the sequence; rewriting a stretch and recomputing hashes breaks the next
//! seal, since the signing key is not in the log. See `docs/audit.md` for what is and is not
//! detected.
//!
//! # Secrets
//!
//! This crate reads no key from anywhere: the caller passes key bytes (resolved from a
//! `file:`/`env:` reference by the binary). Records never carry tokens: arguments are kept
//! as a digest unless `include_arguments` is on, and then the caller passes them already
//! redacted. [`testing::find_strings`] lets tests prove it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod error;
mod key;
mod record;
pub mod sink;
pub mod testing;
pub mod verify;
mod writer;

pub use error::AuditError;
pub use key::{generate_key_pair, AuditSigner, AuditVerifyingKey, KeyPairPem};
pub use record::{
    arguments_digest, record_hash, AuditEvent, AuditPrincipal, AuditRecord, Decision, Seal, GENESIS_HASH,
};
pub use sink::{AuditSink, ChainHead, JsonlSink, StoreSink};
pub use verify::{verify_jsonl, verify_store, Problem, ProblemKind, VerifyOptions, VerifyReport};
pub use writer::{AuditLog, AuditLogConfig, AuditReceipt};
