use std::path::PathBuf;

use thiserror::Error;

/// Why the audit log could not do what was asked. The gateway refuses a call when
/// [`crate::AuditLog::append`] returns one of these and `required` is on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing an audit file failed.
    #[error("cannot {action} audit file `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store refused the batch.
    #[error("audit store: {0}")]
    Store(#[from] moat_store::StoreError),
    /// The writer task has stopped (shut down, or a sink failed and cannot recover).
    #[error("the audit writer has stopped: {0}")]
    Closed(String),
    /// A sink refused the batch this record was in (the message says which and why).
    #[error("audit record not written: {0}")]
    NotWritten(String),
    /// A key could not be read.
    #[error("invalid audit {what} key: {reason}")]
    Key { what: &'static str, reason: String },
    /// A record could not be encoded.
    #[error("cannot encode audit record: {0}")]
    Encode(String),
    /// An existing log could not be resumed (its last record is unreadable).
    #[error("cannot resume audit log {sink}: {reason}")]
    Resume { sink: String, reason: String },
}
