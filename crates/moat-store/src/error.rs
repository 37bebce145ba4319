use thiserror::Error;

/// Why a store operation failed.
///
/// Callers fail closed on every variant: a session that cannot be read is not a session,
/// a rate-limit bucket that cannot be taken from refuses the request.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL in the configuration is not one Moat understands.
    #[error("invalid store url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The backend does not keep this kind of state (e.g. audit records in Redis).
    #[error("the {backend} store does not support {what}")]
    Unsupported { backend: &'static str, what: &'static str },
    /// A record with this key already exists (API key ids are unique).
    #[error("{what} `{key}` already exists")]
    Conflict { what: &'static str, key: String },
    /// The database was written by a newer Moat than this one.
    #[error("store schema version {found} is newer than this moat supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A stored value could not be decoded (the store was edited by hand or is corrupt).
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// The backend failed: I/O, SQL, network.
    #[error("{backend} store error: {message}")]
    Backend { backend: &'static str, message: String },
}

impl StoreError {
    /// A backend failure with its message.
    pub fn backend(backend: &'static str, err: impl std::fmt::Display) -> Self {
        StoreError::Backend { backend, message: err.to_string() }
    }
}
