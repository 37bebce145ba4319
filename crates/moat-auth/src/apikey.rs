//! API keys (`[auth] mode = "api_key"`).
//!
//! A key reads `moat_<id>_<secret>`: `id` is 16 hex digits (a public lookup handle, shown by
//! `moat keys list`), `secret` is 64 hex digits (256 bits from the OS CSPRNG). Only
//! `SHA-256(salt ‖ secret)` with a per-key 16-byte salt is stored, and compared in constant
//! time.
//!
//! Why salted SHA-256 and not argon2: argon2 exists to slow down guessing of *low-entropy*
//! passwords. A 256-bit random secret cannot be guessed however fast the hash is, so a slow hash
//! adds no protection — but it would cost tens of milliseconds and megabytes of memory per
//! request, which turns every unauthenticated request into a cheap denial of service. The salt
//! keeps equal secrets from having equal hashes and defeats precomputation across stores.
//!
//! Storage: [`KeyStore`] is the seam. [`FileKeyStore`] keeps the records in one JSON file
//! (mode 0600, written atomically) until the gateway's shared store takes over.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::InvalidTokenReason;
use crate::principal::{AuthMethod, Principal};

/// Where API keys are kept when `[auth] api_keys_file` is not set:
/// `<data dir>/moat/api-keys.json` (`~/.local/share/moat/api-keys.json` on Linux).
pub fn default_key_file() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("moat").join("api-keys.json"))
}

/// Every key starts with this.
pub const KEY_PREFIX: &str = "moat_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const SALT_BYTES: usize = 16;
/// Largest key file read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What is stored for one key. Holds no secret: only the salt and the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// 16 lowercase hex digits.
    pub id: String,
    /// Hex of the 16-byte salt.
    pub salt: String,
    /// Hex of `SHA-256(salt ‖ secret)`.
    pub hash: String,
    /// The principal's subject.
    pub subject: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; a revoked key never authenticates again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// A newly created key in clear text: shown once, then dropped (zeroized).
pub struct PlainKey(Zeroizing<String>);

impl PlainKey {
    /// The key to hand to the client.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey(***)")
    }
}

/// Who a new key is for.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub subject: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    pub description: String,
}

/// Errors of key storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    #[error("cannot read api key file `{path}`: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("cannot write api key file `{path}`: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("api key `{0}` does not exist")]
    NotFound(String),
    #[error("api key subject must not be empty")]
    EmptySubject,
    #[error("the system random number generator failed")]
    Random,
}

/// Where key records live. The gateway's store will implement this; [`FileKeyStore`] does now.
pub trait KeyStore: Send + Sync {
    /// The record with this id, revoked or not.
    ///
    /// # Errors
    /// When the storage cannot be read.
    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, KeyStoreError>;
    /// Every record.
    ///
    /// # Errors
    /// When the storage cannot be read.
    fn list(&self) -> Result<Vec<ApiKeyRecord>, KeyStoreError>;
    /// Adds a record.
    ///
    /// # Errors
    /// When the storage cannot be written.
    fn insert(&self, record: ApiKeyRecord) -> Result<(), KeyStoreError>;
    /// Marks a key revoked. Returns `false` when it already was.
    ///
    /// # Errors
    /// `NotFound`, or when the storage cannot be written.
    fn revoke(&self, id: &str) -> Result<bool, KeyStoreError>;
}

/// Creates a key: returns the record to store and the clear key to show once.
///
/// # Errors
/// `EmptySubject`, or `Random` when the OS CSPRNG fails.
pub fn generate(new: NewKey) -> Result<(ApiKeyRecord, PlainKey), KeyStoreError> {
    if new.subject.trim().is_empty() {
        return Err(KeyStoreError::EmptySubject);
    }
    let mut id = [0u8; ID_BYTES];
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    let mut salt = [0u8; SALT_BYTES];
    for buf in [&mut id[..], &mut secret[..], &mut salt[..]] {
        getrandom::getrandom(buf).map_err(|_| KeyStoreError::Random)?;
    }
    let id = hex::encode(id);
    let secret_hex = Zeroizing::new(hex::encode(&secret[..]));
    let hash = hash_secret(&salt, secret_hex.as_bytes());
    let record = ApiKeyRecord {
        id: id.clone(),
        salt: hex::encode(salt),
        hash: hex::encode(hash),
        subject: new.subject,
        roles: new.roles,
        groups: new.groups,
        scopes: new.scopes,
        description: new.description,
        created_at: unix_now(),
        revoked_at: None,
    };
    let plain = PlainKey(Zeroizing::new(format!("{KEY_PREFIX}{id}_{}", secret_hex.as_str())));
    Ok((record, plain))
}

fn hash_secret(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// Splits `moat_<id>_<secret>`; `None` if the shape is wrong.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex_of(id, ID_BYTES) && hex_of(secret, SECRET_BYTES)).then_some((id, secret))
}

/// Whether a bearer value has the shape of a Moat API key.
pub fn looks_like_api_key(token: &str) -> bool {
    split_key(token).is_some()
}

/// Checks API keys against a [`KeyStore`]. Cheap to clone.
#[derive(Clone)]
pub struct ApiKeyAuthenticator {
    store: Arc<dyn KeyStore>,
}

/// Why an API key did not authenticate.
#[derive(Debug)]
pub enum ApiKeyError {
    /// Unknown, revoked, malformed or wrong secret (one answer for all, on purpose).
    Invalid(InvalidTokenReason),
    /// The store could not be read: refuse (fail closed) and tell the operator.
    Store(KeyStoreError),
}

impl ApiKeyAuthenticator {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        ApiKeyAuthenticator { store }
    }

    /// The principal for `key`.
    ///
    /// # Errors
    /// [`ApiKeyError::Invalid`] for any key that is not a live key with the right secret.
    pub fn authenticate(&self, key: &str) -> Result<Principal, ApiKeyError> {
        let invalid = || ApiKeyError::Invalid(InvalidTokenReason::UnknownApiKey);
        let (id, secret) = split_key(key).ok_or_else(invalid)?;
        let record = self.store.get(id).map_err(ApiKeyError::Store)?;
        let Some(record) = record else {
            // Same work as a known id, so timing does not tell which ids exist.
            let _ = hash_secret(&[0u8; SALT_BYTES], secret.as_bytes());
            return Err(invalid());
        };
        let salt = hex::decode(&record.salt).map_err(|_| invalid())?;
        let stored = hex::decode(&record.hash).map_err(|_| invalid())?;
        let computed = hash_secret(&salt, secret.as_bytes());
        let matches: bool = computed.as_slice().ct_eq(stored.as_slice()).into();
        if !matches || record.revoked_at.is_some() {
            return Err(invalid());
        }
        Ok(Principal {
            subject: record.subject,
            client_id: Some(format!("api_key:{}", record.id)),
            scopes: record.scopes.into_iter().collect(),
            roles: record.roles.into_iter().collect(),
            groups: record.groups.into_iter().collect(),
            tenant: None,
            issuer: None,
            auth_method: AuthMethod::ApiKey,
        })
    }
}

/// The file format: `{"version": 1, "keys": [ApiKeyRecord…]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<ApiKeyRecord>,
}

/// Keys in one JSON file. Re-read when the file changes (so `moat keys revoke` takes effect in
/// a running gateway without a restart); written to a temporary file and renamed.
pub struct FileKeyStore {
    path: PathBuf,
    cache: Mutex<Option<(FileStamp, Arc<Vec<ApiKeyRecord>>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileKeyStore {
    /// A store at `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyStore { path: path.into(), cache: Mutex::new(None) }
    }

    /// The file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_err(&self, detail: impl fmt::Display) -> KeyStoreError {
        KeyStoreError::Read { path: self.path.clone(), detail: detail.to_string() }
    }

    fn write_err(&self, detail: impl fmt::Display) -> KeyStoreError {
        KeyStoreError::Write { path: self.path.clone(), detail: detail.to_string() }
    }

    fn load(&self) -> Result<Arc<Vec<ApiKeyRecord>>, KeyStoreError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => FileStamp { modified: m.modified().ok(), len: m.len() },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Arc::new(Vec::new()));
            }
            Err(e) => return Err(self.read_err(e)),
        };
        if let Ok(cache) = self.cache.lock() {
            if let Some((cached_stamp, records)) = cache.as_ref() {
                if *cached_stamp == stamp {
                    return Ok(Arc::clone(records));
                }
            }
        }
        if stamp.len > MAX_FILE_BYTES {
            return Err(self.read_err("file too large"));
        }
        let text = fs::read_to_string(&self.path).map_err(|e| self.read_err(e))?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| self.read_err(e))?;
        if file.version != 1 {
            return Err(self.read_err(format!("unknown version {}", file.version)));
        }
        let records = Arc::new(file.keys);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((stamp, Arc::clone(&records)));
        }
        Ok(records)
    }

    fn save(&self, keys: Vec<ApiKeyRecord>) -> Result<(), KeyStoreError> {
        let text = serde_json::to_string_pretty(&KeyFile { version: 1, keys }).map_err(|e| self.write_err(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| self.write_err(e))?;
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(|e| self.write_err(e))?;
            f.write_all(text.as_bytes()).map_err(|e| self.write_err(e))?;
            f.write_all(b"\n").map_err(|e| self.write_err(e))?;
            f.sync_all().map_err(|e| self.write_err(e))?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| self.write_err(e))?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
        Ok(())
    }
}

impl KeyStore for FileKeyStore {
    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, KeyStoreError> {
        Ok(self.load()?.iter().find(|r| r.id == id).cloned())
    }

    fn list(&self) -> Result<Vec<ApiKeyRecord>, KeyStoreError> {
        Ok(self.load()?.as_ref().clone())
    }

    fn insert(&self, record: ApiKeyRecord) -> Result<(), KeyStoreError> {
        let mut keys = self.load()?.as_ref().clone();
        keys.push(record);
        self.save(keys)
    }

    fn revoke(&self, id: &str) -> Result<bool, KeyStoreError> {
        let mut keys = self.load()?.as_ref().clone();
        let record = keys.iter_mut().find(|r| r.id == id).ok_or_else(|| KeyStoreError::NotFound(id.to_owned()))?;
        if record.revoked_at.is_some() {
            return Ok(false);
        }
        record.revoked_at = Some(unix_now());
        self.save(keys)?;
        Ok(true)
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn new_key(subject: &str) -> NewKey {
        NewKey { subject: subject.into(), roles: vec!["reader".into()], ..NewKey::default() }
    }

    #[test]
    fn created_key_authenticates_and_the_file_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let store = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
        let (record, plain) = generate(new_key("ci-bot")).unwrap_or_else(|_| unreachable!());
        store.insert(record.clone()).unwrap_or_else(|_| unreachable!());
        let auth = ApiKeyAuthenticator::new(store.clone());
        let p = auth.authenticate(plain.reveal()).ok();
        assert_eq!(p.as_ref().map(|p| p.subject.as_str()), Some("ci-bot"));
        assert!(p.is_some_and(|p| p.has_role("reader") && p.auth_method == AuthMethod::ApiKey));
        let secret = plain.reveal().rsplit('_').next().unwrap_or_default().to_owned();
        let text = fs::read_to_string(store.path()).unwrap_or_default();
        assert!(text.contains(&record.id));
        assert!(!text.contains(&secret));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(store.path()).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn wrong_secret_unknown_id_bad_shape_and_revoked_keys_fail() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let store = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
        let (record, plain) = generate(new_key("a")).unwrap_or_else(|_| unreachable!());
        store.insert(record.clone()).unwrap_or_else(|_| unreachable!());
        let auth = ApiKeyAuthenticator::new(store.clone());
        let key = plain.reveal().to_owned();
        let mut wrong = key.clone();
        let last = if wrong.ends_with('0') { '1' } else { '0' };
        wrong.pop();
        wrong.push(last);
        let (_, other) = generate(new_key("b")).unwrap_or_else(|_| unreachable!());
        for bad in [wrong.as_str(), other.reveal(), "moat_x_y", "Bearer", "", &key[..key.len() - 1]] {
            assert!(matches!(auth.authenticate(bad), Err(ApiKeyError::Invalid(_))), "{bad}");
        }
        assert!(auth.authenticate(&key).is_ok());
        assert_eq!(store.revoke(&record.id).ok(), Some(true));
        assert_eq!(store.revoke(&record.id).ok(), Some(false));
        assert!(matches!(store.revoke("ffffffffffffffff"), Err(KeyStoreError::NotFound(_))));
        // A fresh authenticator over the same file (as the running gateway re-reads it).
        let again = ApiKeyAuthenticator::new(Arc::new(FileKeyStore::new(store.path())));
        assert!(matches!(again.authenticate(&key), Err(ApiKeyError::Invalid(_))));
        assert!(matches!(auth.authenticate(&key), Err(ApiKeyError::Invalid(_))));
    }

    #[test]
    fn a_corrupt_file_fails_closed() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let path = dir.path().join("keys.json");
        fs::write(&path, "{not json").unwrap_or_else(|_| unreachable!());
        let auth = ApiKeyAuthenticator::new(Arc::new(FileKeyStore::new(&path)));
        let (_, plain) = generate(new_key("a")).unwrap_or_else(|_| unreachable!());
        assert!(matches!(auth.authenticate(plain.reveal()), Err(ApiKeyError::Store(_))));
        assert!(generate(new_key(" ")).is_err());
    }
}
