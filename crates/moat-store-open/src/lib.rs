//! Opens Moat's state store from a `[store] url`. This is the one place that knows every
//! backend; the gateway and the audit log see only `Arc<dyn moat_store::Store>`.
//!
//! The shared conformance suite (`tests/conformance.rs`) runs against every backend
//! through this function, so it tests what the gateway actually opens.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use moat_store::{MemoryStore, Store, StoreError, StoreUrl};
use moat_store_redis::RedisStore;
use moat_store_sqlite::SqliteStore;

pub use moat_store;

/// The key prefix used in Redis.
pub const REDIS_PREFIX: &str = "moat:";

/// Opens the store `url` names (see [`StoreUrl::parse`]); `None` means the default, a
/// SQLite file under the user's data directory ([`default_sqlite_path`]).
///
/// # Errors
/// [`StoreError::InvalidUrl`] for a URL Moat does not understand, and the backend's error
/// when it cannot be opened (SQLite file, Redis server).
pub async fn open(url: Option<&str>) -> Result<Arc<dyn Store>, StoreError> {
    let url = match url {
        Some(u) => StoreUrl::parse(u)?,
        None => StoreUrl::Sqlite { path: default_sqlite_path()?, synchronous_full: false },
    };
    open_parsed(&url).await
}

/// Opens an already parsed store URL.
///
/// # Errors
/// As [`open`].
pub async fn open_parsed(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Sqlite { path, synchronous_full } => Arc::new(SqliteStore::open(path, *synchronous_full)?),
        StoreUrl::Redis(u) => Arc::new(RedisStore::connect(u, REDIS_PREFIX).await?),
    })
}

/// `<data dir>/moat/moat.db`: `~/.local/share/moat/moat.db` on Linux (honouring
/// `XDG_DATA_HOME`), `~/Library/Application Support/moat/moat.db` on macOS.
///
/// # Errors
/// When the platform has no data directory (no home directory).
pub fn default_sqlite_path() -> Result<PathBuf, StoreError> {
    dirs::data_dir().map(|d| d.join("moat").join("moat.db")).ok_or_else(|| StoreError::InvalidUrl {
        url: String::new(),
        reason: "no user data directory: set `[store] url`".to_owned(),
    })
}
