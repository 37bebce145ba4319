//! The writer task: one owner of the chains, group commit, acknowledgements, seals.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use moat_store::{AuditRow, SealRow, UnixMillis};

use crate::record::{record_hash, AuditEvent, AuditRecord, GENESIS_HASH};
use crate::sink::{AuditSink, ChainHead};
use crate::{AuditError, AuditSigner};

/// How the writer batches, acknowledges and seals.
#[derive(Debug, Clone)]
pub struct AuditLogConfig {
    /// `[audit] required`: [`AuditLog::append`] waits until the record is durable in every
    /// sink (file fsynced, store committed) and fails if it is not.
    pub required: bool,
    /// Seal after this many records (0: only on the interval).
    pub seal_every: u64,
    /// Seal this long after the first unsealed record.
    pub seal_interval: Duration,
    /// Most records written in one batch (one write + fsync, one transaction).
    pub max_batch: usize,
    /// Records that may wait in the queue; `append` waits for room beyond it.
    pub queue_capacity: usize,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            required: true,
            seal_every: 1000,
            seal_interval: Duration::from_secs(10),
            max_batch: 1024,
            queue_capacity: 16 * 1024,
        }
    }
}

/// What [`AuditLog::append`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditReceipt {
    /// The record's sequence number in the first sink, once written (`required`); `None`
    /// when the caller did not wait.
    pub seq: Option<u64>,
}

/// The handle the gateway holds: cheap to clone, one per task if need be. Every clone
/// feeds the same writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    required: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("required", &self.required).finish_non_exhaustive()
    }
}

enum Msg {
    Append { event: Box<AuditEvent>, ack: Option<oneshot::Sender<Result<u64, String>>> },
    Flush(oneshot::Sender<Result<(), String>>),
    Shutdown(oneshot::Sender<Result<(), String>>),
}

impl AuditLog {
    /// Resumes each sink's chain where it ends (sealing an unsealed tail left by a crash,
    /// when there is a signer) and starts the writer task on the current tokio runtime.
    ///
    /// # Errors
    /// When a sink's last record cannot be read or the resume seal cannot be written.
    pub async fn start(
        config: AuditLogConfig,
        sinks: Vec<Box<dyn AuditSink>>,
        signer: Option<AuditSigner>,
    ) -> Result<AuditLog, AuditError> {
        let mut chains = Vec::with_capacity(sinks.len());
        for mut sink in sinks {
            let head = sink.head().await?;
            let mut chain = SinkChain { sink, head, unsealed: 0 };
            if let (Some(signer), Some(head)) = (&signer, &chain.head) {
                if !head.sealed {
                    chain.seal(signer).await?;
                }
            }
            chains.push(chain);
        }
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let required = config.required;
        let writer = Writer { chains, signer, config, first_unsealed_at: None };
        tokio::spawn(writer.run(rx));
        Ok(AuditLog { tx, required })
    }

    /// Records one decision. With `required`, returns once the record is durable in every
    /// sink, or an error when any sink refused it: the gateway must then refuse the call.
    /// Without, returns once the record is queued.
    ///
    /// # Errors
    /// [`AuditError::NotWritten`] when a sink failed, [`AuditError::Closed`] when the writer
    /// has stopped.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditReceipt, AuditError> {
        if !self.required {
            self.tx.send(Msg::Append { event: Box::new(event), ack: None }).await.map_err(|_| closed())?;
            return Ok(AuditReceipt { seq: None });
        }
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Append { event: Box::new(event), ack: Some(ack) }).await.map_err(|_| closed())?;
        match done.await {
            Ok(Ok(seq)) => Ok(AuditReceipt { seq: Some(seq) }),
            Ok(Err(e)) => Err(AuditError::NotWritten(e)),
            Err(_) => Err(closed()),
        }
    }

    /// Whether [`AuditLog::append`] waits for durability.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Writes everything queued before this call durably and seals it.
    ///
    /// # Errors
    /// As [`AuditLog::append`].
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Flush(ack)).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?.map_err(AuditError::NotWritten)
    }

    /// Writes everything queued, seals it, and stops the writer. Later appends fail.
    ///
    /// # Errors
    /// As [`AuditLog::flush`].
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Shutdown(ack)).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?.map_err(AuditError::NotWritten)
    }
}

fn closed() -> AuditError {
    AuditError::Closed("it was shut down".to_owned())
}

struct SinkChain {
    sink: Box<dyn AuditSink>,
    head: Option<ChainHead>,
    unsealed: u64,
}

impl SinkChain {
    /// Seals the head, durably.
    async fn seal(&mut self, signer: &AuditSigner) -> Result<(), AuditError> {
        let Some(head) = &self.head else { return Ok(()) };
        let seal = signer.seal(head.seq, &head.hash, UnixMillis::now());
        let row = seal_row(&seal)?;
        self.sink.append(Vec::new(), vec![row], true).await?;
        if let Some(head) = &mut self.head {
            head.sealed = true;
        }
        self.unsealed = 0;
        Ok(())
    }
}

fn seal_row(seal: &crate::Seal) -> Result<SealRow, AuditError> {
    let body = serde_json::to_string(seal).map_err(|e| AuditError::Encode(e.to_string()))?;
    Ok(SealRow { seq: seal.seq, body })
}

struct Writer {
    chains: Vec<SinkChain>,
    signer: Option<AuditSigner>,
    config: AuditLogConfig,
    /// When the oldest unsealed record was written: the seal interval runs from there.
    first_unsealed_at: Option<Instant>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch = Vec::with_capacity(self.config.max_batch);
        loop {
            let seal_at = match (&self.signer, self.first_unsealed_at) {
                (Some(_), Some(t)) => Some(t + self.config.seal_interval),
                _ => None,
            };
            let first = match seal_at {
                Some(at) => tokio::select! {
                    m = rx.recv() => m,
                    () = tokio::time::sleep_until(at) => {
                        let _ = self.seal_all().await;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(first) = first else {
                // Every handle was dropped: seal what is there and stop.
                let _ = self.seal_all().await;
                return;
            };
            batch.push(first);
            while batch.len() < self.config.max_batch.max(1) {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut events = Vec::with_capacity(batch.len());
            let mut acks = Vec::with_capacity(batch.len());
            let mut controls = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Msg::Append { event, ack } => {
                        events.push(*event);
                        acks.push(ack);
                    }
                    other => controls.push(other),
                }
            }
            if !events.is_empty() {
                let result = self.write_batch(events).await;
                for (i, ack) in acks.into_iter().enumerate() {
                    if let Some(ack) = ack {
                        let _ = ack.send(match &result {
                            Ok(first_seq) => Ok(first_seq + i as u64),
                            Err(e) => Err(e.clone()),
                        });
                    }
                }
            }
            for control in controls {
                match control {
                    Msg::Flush(ack) => {
                        let _ = ack.send(self.flush().await.map_err(|e| e.to_string()));
                    }
                    Msg::Shutdown(ack) => {
                        let _ = ack.send(self.flush().await.map_err(|e| e.to_string()));
                        return;
                    }
                    Msg::Append { .. } => {}
                }
            }
        }
    }

    /// Writes one batch to every sink; the first record's sequence number in the first
    /// sink, or why a sink refused it.
    async fn write_batch(&mut self, events: Vec<AuditEvent>) -> Result<u64, String> {
        let mut first_seq = None;
        let mut errors = Vec::new();
        let n = events.len() as u64;
        let last_chain = self.chains.len().saturating_sub(1);
        let mut events = Some(events);
        for (index, chain) in self.chains.iter_mut().enumerate() {
            let evs = if index == last_chain {
                events.take().unwrap_or_default()
            } else {
                events.clone().unwrap_or_default()
            };
            let (mut seq, mut prev) = match &chain.head {
                Some(h) => (h.seq, h.hash.clone()),
                None => (0, GENESIS_HASH.to_owned()),
            };
            let start = seq + 1;
            let mut rows = Vec::with_capacity(evs.len());
            let mut encode_error = None;
            for event in evs {
                seq += 1;
                let record = AuditRecord::new(event, seq, prev.clone());
                let body = match record.canonical_body() {
                    Ok(b) => b,
                    Err(e) => {
                        encode_error = Some(e);
                        break;
                    }
                };
                let hash = record_hash(body.as_bytes());
                rows.push(AuditRow {
                    seq,
                    time: record.unix_millis().unwrap_or(UnixMillis(0)),
                    principal: record.principal.map(|p| p.subject),
                    tool: record.target,
                    decision: record.decision.as_str().to_owned(),
                    hash: hash.clone(),
                    body,
                });
                prev = hash;
            }
            if let Some(e) = encode_error {
                errors.push(format!("{}: {e}", chain.sink.describe()));
                continue;
            }
            // Seal in the same write when this batch reaches `seal_every`.
            let mut seals = Vec::new();
            let due = self.config.seal_every > 0 && chain.unsealed + n >= self.config.seal_every;
            if let (Some(signer), true) = (&self.signer, due) {
                match seal_row(&signer.seal(seq, &prev, UnixMillis::now())) {
                    Ok(row) => seals.push(row),
                    Err(e) => tracing::error!(sink = %chain.sink.describe(), error = %e, "cannot seal the audit chain"),
                }
            }
            let sealed = !seals.is_empty();
            match chain.sink.append(rows, seals, self.config.required).await {
                Ok(()) => {
                    chain.head = Some(ChainHead { seq, hash: prev, sealed });
                    chain.unsealed = if sealed { 0 } else { chain.unsealed + n };
                    first_seq.get_or_insert(start);
                }
                Err(e) => {
                    tracing::error!(sink = %chain.sink.describe(), error = %e, "audit records not written");
                    errors.push(format!("{}: {e}", chain.sink.describe()));
                }
            }
        }
        if self.chains.iter().any(|c| c.unsealed > 0) {
            self.first_unsealed_at.get_or_insert_with(Instant::now);
        } else {
            self.first_unsealed_at = None;
        }
        if errors.is_empty() {
            Ok(first_seq.unwrap_or(0))
        } else {
            Err(errors.join("; "))
        }
    }

    /// Seals every chain with unsealed records.
    async fn seal_all(&mut self) -> Result<(), AuditError> {
        self.first_unsealed_at = None;
        let Some(signer) = &self.signer else { return Ok(()) };
        let mut result = Ok(());
        for chain in &mut self.chains {
            if chain.head.as_ref().is_some_and(|h| !h.sealed) {
                if let Err(e) = chain.seal(signer).await {
                    tracing::error!(sink = %chain.sink.describe(), error = %e, "cannot seal the audit chain");
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Makes everything written so far durable, and sealed where there is a signer.
    async fn flush(&mut self) -> Result<(), AuditError> {
        if self.signer.is_some() {
            return self.seal_all().await;
        }
        for chain in &mut self.chains {
            chain.sink.append(Vec::new(), Vec::new(), true).await?;
        }
        Ok(())
    }
}
