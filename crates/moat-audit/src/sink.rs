//! Where records go: the store (SQLite or memory, through `moat-store`) and JSON-lines files.
//!
//! # The JSON-lines format
//!
//! One entry a line, each line a JSON object ending in `\n`:
//!
//! - a record: `{"hash":"<hex>","record":{...}}`, where `record` is the record's canonical
//!   JSON exactly as hashed, and `hash` is [`crate::record_hash`] of those bytes;
//! - a seal: `{"seal":{"v":1,"seq":N,"head":"<hex>","time":"...","key_id":"...","sig":"..."}}`,
//!   written right after record `N`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;

use moat_store::{AuditRow, AuditStore, SealRow};

use crate::record::Seal;
use crate::AuditError;

/// The last record of a chain, as a sink holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// Whether a seal covers it already.
    pub sealed: bool,
}

/// A place records are appended to. Each sink holds its own chain: the writer numbers and
/// links records per sink, so that a sink that missed a batch (and refused it) does not
/// break the chain of another.
#[async_trait]
pub trait AuditSink: Send {
    /// A short description for messages (`file /var/log/moat/audit.jsonl`).
    fn describe(&self) -> String;

    /// The last record already written, to continue the chain after a restart.
    async fn head(&mut self) -> Result<Option<ChainHead>, AuditError>;

    /// Appends records, then seals, as one unit: when this returns `Ok` all are written
    /// (and on disk, when `durable`), and on `Err` none are visible. Each seal comes after
    /// the record it covers.
    async fn append(&mut self, records: Vec<AuditRow>, seals: Vec<SealRow>, durable: bool) -> Result<(), AuditError>;
}

// ---------------------------------------------------------------------------------------
// Lines

/// One parsed line of a JSON-lines audit file.
pub(crate) enum Line<'a> {
    Record { body: &'a str, hash: String },
    Seal(Seal),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyLine<'a> {
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    seal: Option<Seal>,
}

/// Parses one line (without its `\n`).
pub(crate) fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let any: AnyLine<'_> = serde_json::from_str(line).map_err(|e| format!("not a valid audit line ({e})"))?;
    match any {
        AnyLine { record: Some(body), hash: Some(hash), seal: None } => Ok(Line::Record { body: body.get(), hash }),
        AnyLine { record: None, hash: None, seal: Some(seal) } => Ok(Line::Seal(seal)),
        _ => Err("a line must hold either `record` and `hash`, or `seal`".to_owned()),
    }
}

/// The line for a record row.
pub(crate) fn record_line(row: &AuditRow) -> String {
    format!("{{\"hash\":\"{}\",\"record\":{}}}\n", row.hash, row.body)
}

/// The line for a seal row.
pub(crate) fn seal_line(row: &SealRow) -> String {
    format!("{{\"seal\":{}}}\n", row.body)
}

// ---------------------------------------------------------------------------------------
// JSON-lines file

/// Appends to a JSON-lines file. Each batch is one `write` (and one `fdatasync` when
/// durable); a failed batch is cut off again so the file never ends in half a batch.
pub struct JsonlSink {
    path: PathBuf,
    file: Option<File>,
    len: u64,
}

impl JsonlSink {
    /// Opens (creating it, readable by its owner only) the file at `path` for appending.
    ///
    /// A last line without its `\n` is the remainder of a write the process did not finish
    /// (it crashed before acknowledging that batch), so it is cut off, with a warning.
    ///
    /// # Errors
    /// When the file cannot be opened or read.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |action, source| AuditError::Io { action, path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io("create the folder of", e))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| io("open", e))?;
        let mut len = file.metadata().map_err(|e| io("read", e))?.len();
        if len > 0 {
            let complete = last_newline_end(&mut file, len).map_err(|e| io("read", e))?;
            if complete < len {
                tracing::warn!(
                    path = %path.display(),
                    bytes = len - complete,
                    "audit file ends in an incomplete line (an unacknowledged write); cutting it off"
                );
                file.set_len(complete).map_err(|e| io("repair", e))?;
                file.sync_data().map_err(|e| io("repair", e))?;
                len = complete;
            }
        }
        Ok(JsonlSink { path: path.to_owned(), file: Some(file), len })
    }
}

/// The offset just past the last `\n` in the first `len` bytes of `file` (0 if none).
fn last_newline_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(0);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads backwards from the end of the file until it finds the last record line, noting
/// whether a seal for it follows.
fn jsonl_head(file: &mut File, len: u64, path: &Path) -> Result<Option<ChainHead>, AuditError> {
    let io = |source| AuditError::Io { action: "read", path: path.to_owned(), source };
    let resume = |reason: String| AuditError::Resume { sink: format!("file {}", path.display()), reason };
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = Vec::new();
        Read::by_ref(file).take(len - start).read_to_end(&mut buf).map_err(io)?;
        let text = String::from_utf8_lossy(&buf);
        // Skip the first (possibly partial) line unless the window starts at 0.
        let mut lines: Vec<&str> = text.split_terminator('\n').collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        let mut sealed_seq = None;
        for line in lines.iter().rev() {
            match parse_line(line) {
                Ok(Line::Seal(seal)) => {
                    sealed_seq.get_or_insert(seal.seq);
                }
                Ok(Line::Record { body, hash }) => {
                    #[derive(Deserialize)]
                    struct Seq {
                        seq: u64,
                    }
                    let seq = serde_json::from_str::<Seq>(body)
                        .map_err(|e| resume(format!("its last record is unreadable ({e})")))?
                        .seq;
                    return Ok(Some(ChainHead { seq, hash, sealed: sealed_seq == Some(seq) }));
                }
                Err(e) => return Err(resume(format!("its last lines are unreadable: {e}"))),
            }
        }
        if start == 0 {
            return Ok(None);
        }
        window = window.saturating_mul(4);
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn head(&mut self) -> Result<Option<ChainHead>, AuditError> {
        let mut file = self.take_file()?;
        let (len, path) = (self.len, self.path.clone());
        let (file, head) = tokio::task::spawn_blocking(move || {
            let head = jsonl_head(&mut file, len, &path);
            (file, head)
        })
        .await
        .map_err(|e| AuditError::Closed(format!("audit file task failed: {e}")))?;
        self.file = Some(file);
        head
    }

    async fn append(&mut self, records: Vec<AuditRow>, seals: Vec<SealRow>, durable: bool) -> Result<(), AuditError> {
        let mut buf = String::with_capacity(records.iter().map(|r| r.body.len() + 100).sum());
        for r in &records {
            buf.push_str(&record_line(r));
        }
        for s in &seals {
            buf.push_str(&seal_line(s));
        }
        let mut file = self.take_file()?;
        let (len, path) = (self.len, self.path.clone());
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                file.write_all(buf.as_bytes())?;
                if durable {
                    file.sync_data()?;
                }
                Ok::<u64, std::io::Error>(buf.len() as u64)
            })();
            if result.is_err() {
                // Cut off whatever part of the batch reached the file, so the next batch
                // starts on a line of its own.
                if let Err(e) = file.set_len(len) {
                    tracing::error!(path = %path.display(), error = %e, "cannot cut off a failed audit write");
                    return (None, result);
                }
            }
            (Some(file), result)
        })
        .await
        .map_err(|e| AuditError::Closed(format!("audit file task failed: {e}")))?;
        self.file = file;
        let written = result.map_err(|source| AuditError::Io { action: "write", path: self.path.clone(), source })?;
        self.len += written;
        Ok(())
    }
}

impl JsonlSink {
    fn take_file(&mut self) -> Result<File, AuditError> {
        self.file.take().ok_or_else(|| {
            AuditError::Closed(format!(
                "audit file `{}` could not be repaired after a failed write",
                self.path.display()
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Store

/// Appends to the store's audit tables: one transaction per batch.
pub struct StoreSink {
    store: Arc<dyn AuditStore>,
    name: String,
}

impl StoreSink {
    /// A sink over `store`; `name` describes it in messages (`sqlite:///var/lib/moat/moat.db`).
    pub fn new(store: Arc<dyn AuditStore>, name: impl Into<String>) -> Self {
        StoreSink { store, name: name.into() }
    }
}

#[async_trait]
impl AuditSink for StoreSink {
    fn describe(&self) -> String {
        format!("store {}", self.name)
    }

    async fn head(&mut self) -> Result<Option<ChainHead>, AuditError> {
        let Some(row) = self.store.audit_head().await? else { return Ok(None) };
        let seals = self.store.audit_seals(row.seq.saturating_sub(1), 1).await?;
        let sealed = seals.first().is_some_and(|s| s.seq == row.seq);
        Ok(Some(ChainHead { seq: row.seq, hash: row.hash, sealed }))
    }

    async fn append(&mut self, records: Vec<AuditRow>, seals: Vec<SealRow>, _durable: bool) -> Result<(), AuditError> {
        // A committed transaction is durable as the store's `synchronous` setting makes it
        // (see docs/store.md): against a process crash always, against power loss with
        // `synchronous=full`.
        self.store.append_audit(records, seals).await.map_err(AuditError::from)
    }
}
