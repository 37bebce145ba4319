//! A stdio upstream: a child process speaking newline-delimited JSON-RPC.
//!
//! The caller builds the `Command` (the sandbox crate confines it); this module pipes it,
//! frames lines with a length bound, tags the child's stderr with the upstream's name in the
//! log, and closes the inbound channel when the child exits.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Mutex};

use super::{synthesized_error, Inbound, Outbound, TransportError};
use crate::jsonrpc::{code, Id, Message};
use crate::limits::Limits;

/// Write side of a running stdio upstream.
#[derive(Debug, Clone)]
pub struct StdioTransport {
    tx: mpsc::Sender<Bytes>,
    child: Arc<Mutex<Option<Child>>>,
}

/// How a stdio child ended.
#[derive(Debug, Clone)]
pub struct ExitReport {
    pub status: Option<std::process::ExitStatus>,
}

impl StdioTransport {
    /// Starts `cmd` and returns the transport, the channel of messages it reads, and a
    /// receiver that yields once when the child has exited.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
    ) -> std::io::Result<(StdioTransport, mpsc::Receiver<Inbound>, tokio::sync::oneshot::Receiver<ExitReport>)> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("child has no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("child has no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| std::io::Error::other("child has no stderr"))?;
        let name: Arc<str> = Arc::from(name);

        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(bytes) = rx.recv().await {
                let ok = stdin.write_all(&bytes).await.is_ok() && stdin.write_all(b"\n").await.is_ok();
                if !ok || stdin.flush().await.is_err() {
                    break;
                }
            }
        });

        let (in_tx, in_rx) = mpsc::channel::<Inbound>(256);
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        let child = Arc::new(Mutex::new(Some(child)));
        let reader_name = name.clone();
        let reader_child = child.clone();
        tokio::spawn(async move {
            read_messages(&reader_name, stdout, &in_tx).await;
            drop(in_tx);
            // stdout closed: the child is exiting or has exited. Reap it.
            let status = match reader_child.lock().await.as_mut() {
                Some(c) => c.wait().await.ok(),
                None => None,
            };
            let _ = exit_tx.send(ExitReport { status });
        });
        tokio::spawn(log_stderr(name, stderr));
        Ok((StdioTransport { tx, child }, in_rx, exit_rx))
    }

    pub async fn send(&self, out: Outbound) -> Result<(), TransportError> {
        self.tx.send(out.bytes).await.map_err(|_| TransportError::Closed)
    }

    pub async fn shutdown(&self) {
        if let Some(child) = self.child.lock().await.as_mut() {
            let _ = child.start_kill();
        }
    }

    /// The child's process id, while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }
}

/// Reads newline-delimited messages; a line over the limit is skipped whole, with a warning.
async fn read_messages(name: &str, stdout: impl AsyncRead + Unpin, tx: &mpsc::Sender<Inbound>) {
    let limits = Limits::upstream();
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut discarding = false;
    loop {
        let (consumed, complete) = {
            let buf = match reader.fill_buf().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(upstream = name, error = %e, "cannot read from upstream");
                    return;
                }
            };
            if buf.is_empty() {
                return; // EOF
            }
            match memchr::memchr(b'\n', buf) {
                Some(pos) => {
                    if !discarding {
                        line.extend_from_slice(buf.get(..pos).unwrap_or_default());
                    }
                    (pos + 1, true)
                }
                None => {
                    if !discarding {
                        line.extend_from_slice(buf);
                    }
                    (buf.len(), false)
                }
            }
        };
        reader.consume(consumed);
        if !discarding && line.len() > limits.max_bytes {
            tracing::warn!(
                upstream = name,
                limit = limits.max_bytes,
                "upstream sent a message over the size limit; dropped"
            );
            discarding = true;
            line.clear();
        }
        if !complete {
            continue;
        }
        if discarding {
            discarding = false;
            continue;
        }
        let bytes = Bytes::from(std::mem::take(&mut line));
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Message::parse(bytes.clone(), &limits) {
            Ok(msg) => {
                if tx.send(Inbound { msg, related: None }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(upstream = name, error = %e, "upstream sent an invalid message");
                // If the garbage names a request id, fail that request now instead of letting
                // it time out.
                if let Some(id) = salvage_id(&bytes) {
                    let text = format!("upstream sent an invalid message: {e}");
                    if let Some(msg) = synthesized_error(&id, code::INTERNAL_ERROR, &text) {
                        let _ = tx.send(Inbound { msg, related: None }).await;
                    }
                }
            }
        }
    }
}

fn salvage_id(bytes: &[u8]) -> Option<Id> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    match v.get("id")? {
        serde_json::Value::Number(n) => n.as_u64().map(Id::num),
        serde_json::Value::String(s) => Some(Id::string(s)),
        _ => None,
    }
}

async fn log_stderr(name: Arc<str>, stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr).lines();
    // `lines` has no length bound of its own; stderr is for humans, so cap what is logged.
    while let Ok(Some(line)) = lines.next_line().await {
        let shown: String =
            line.chars().take(2000).map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c }).collect();
        tracing::info!(target: "moat::upstream", upstream = &*name, "{shown}");
    }
}
