//! Resumable POST event streams (MCP 2025-11-25 basic/transports, "Resumability and
//! Redelivery"; SEP-1699).
//!
//! When a client accepts an event stream, the answer to a call it made is streamed with event
//! ids, after a priming event (an id and empty data) and a `retry` field, so that a client whose
//! connection breaks — a proxy timeout, a laptop lid — can come back with a GET carrying
//! `Last-Event-ID` and receive what it missed on *that* stream, the response included, instead
//! of repeating a call that may not be idempotent. The call runs to its end whether or not the
//! client is connected: its messages go to a [`StreamLog`] kept by the session, and each
//! connection reads the log from where it stands.
//!
//! Event ids are `<stream>.<seq>`: the stream number identifies the stream (the spec forbids
//! replaying one stream's messages on another) and `seq` counts its events; the priming event is
//! `seq` 0. What a session keeps is bounded in streams, in bytes per stream and in bytes for all
//! its streams together, and a stream is let go once it was delivered to the end or a minute
//! after it completed, so a client that drops its connections costs bounded memory.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::router::StreamItem;

/// How many streams a session keeps for resumption; older ones are forgotten.
const MAX_STREAMS: usize = 32;
/// Most bytes of messages one stream keeps; past it, the oldest are dropped (a resume from
/// before them gets what remains).
const MAX_STREAM_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes of messages all of a session's streams keep; past it, its oldest streams go.
const MAX_SESSION_BYTES: usize = 32 * 1024 * 1024;
/// How long a complete stream that was not delivered to the end waits for its client.
const KEEP_UNDELIVERED: Duration = Duration::from_secs(60);
/// The reconnection delay suggested to clients (`retry`), in milliseconds.
pub const RETRY_MS: u64 = 1000;

/// The resumable streams of one session.
#[derive(Debug, Default)]
pub struct ResumableStreams {
    next: AtomicU64,
    logs: Mutex<VecDeque<Arc<StreamLog>>>,
}

impl ResumableStreams {
    /// Starts a log fed by `rx` (a call's messages, ending with its response) and returns it.
    /// The feeding task ends with the call, not with the client's connection.
    pub fn open(&self, mut rx: mpsc::Receiver<StreamItem>) -> Arc<StreamLog> {
        let log = self.new_log();
        let feeding = log.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Some(StreamItem::Related(b)) => feeding.append(b, false),
                    Some(StreamItem::Final(b)) => {
                        feeding.append(b, true);
                        return;
                    }
                    None => {
                        feeding.finish();
                        return;
                    }
                }
            }
        });
        log
    }

    /// A log that holds one answer, already complete.
    pub fn open_answered(&self, response: Bytes) -> Arc<StreamLog> {
        let log = self.new_log();
        log.append(response, true);
        log
    }

    fn new_log(&self) -> Arc<StreamLog> {
        let no = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let log = Arc::new(StreamLog {
            no,
            inner: Mutex::new(LogInner::default()),
            changed: Notify::new(),
            delivered: AtomicBool::new(false),
        });
        if let Ok(mut logs) = self.logs.lock() {
            // Let go of what no client will ask for again; then keep within the bounds,
            // oldest first. (A stream let go that is still being read keeps working: its
            // reader holds it.)
            logs.retain(|l| !l.finished_with());
            let mut bytes: usize = logs.iter().map(|l| l.bytes()).sum();
            while logs.len() >= MAX_STREAMS || (bytes > MAX_SESSION_BYTES && !logs.is_empty()) {
                if let Some(old) = logs.pop_front() {
                    bytes = bytes.saturating_sub(old.bytes());
                }
            }
            logs.push_back(log.clone());
        }
        log
    }

    /// The log and the position named by a `Last-Event-ID` of this session, if it is kept.
    pub fn find(&self, last_event_id: &str) -> Option<(Arc<StreamLog>, u64)> {
        let (no, seq) = last_event_id.split_once('.')?;
        let (no, seq): (u64, u64) = (no.parse().ok()?, seq.parse().ok()?);
        let logs = self.logs.lock().ok()?;
        let log = logs.iter().find(|l| l.no == no)?.clone();
        Some((log, seq))
    }
}

/// The messages of one POST stream, in order.
#[derive(Debug)]
pub struct StreamLog {
    no: u64,
    inner: Mutex<LogInner>,
    changed: Notify,
    /// A reader was handed the stream's last event.
    delivered: AtomicBool,
}

#[derive(Debug, Default)]
struct LogInner {
    /// `(seq, message)`, seq from 1, oldest first.
    events: VecDeque<(u64, Bytes)>,
    last_seq: u64,
    bytes: usize,
    /// The response is in (or the call was dropped): nothing more will come.
    done: bool,
    done_at: Option<Instant>,
}

impl StreamLog {
    fn append(&self, message: Bytes, last: bool) {
        if let Ok(mut g) = self.inner.lock() {
            g.last_seq += 1;
            let seq = g.last_seq;
            g.bytes += message.len();
            g.events.push_back((seq, message));
            // Keep the newest message (the response) even when it alone is over the bound.
            while g.bytes > MAX_STREAM_BYTES && g.events.len() > 1 {
                if let Some((_, old)) = g.events.pop_front() {
                    g.bytes -= old.len();
                }
            }
            if last {
                g.done = true;
                g.done_at = Some(Instant::now());
            }
        }
        self.changed.notify_waiters();
    }

    fn finish(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.done = true;
            g.done_at = Some(Instant::now());
        }
        self.changed.notify_waiters();
    }

    fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.bytes)
    }

    /// Delivered to the end, or complete and unclaimed for [`KEEP_UNDELIVERED`].
    fn finished_with(&self) -> bool {
        self.delivered.load(Ordering::Relaxed)
            || self.inner.lock().map_or(true, |g| g.done_at.is_some_and(|t| t.elapsed() > KEEP_UNDELIVERED))
    }

    /// The priming event: this stream's id at `seq` 0, the `retry` delay, and empty data.
    fn priming_event(&self) -> Bytes {
        Bytes::from(format!("id: {}.0\nretry: {RETRY_MS}\ndata: \n\n", self.no))
    }

    /// Events after `seq` that are there now, and whether the stream is complete after them.
    fn after(&self, seq: u64) -> (Vec<(u64, Bytes)>, bool) {
        match self.inner.lock() {
            Ok(g) => (g.events.iter().filter(|(s, _)| *s > seq).cloned().collect(), g.done),
            Err(_) => (Vec::new(), true),
        }
    }

    /// The stream's events after `seq`, as SSE, waiting for the rest until the response. With
    /// `prime`, the priming event comes first.
    pub fn events(
        self: Arc<Self>,
        seq: u64,
        prime: bool,
    ) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let first = prime.then(|| self.priming_event());
        futures_util::stream::unfold((self, seq, first, false), |(log, mut seq, first, ended)| async move {
            if let Some(b) = first {
                return Some((Ok(b), (log, seq, None, false)));
            }
            if ended {
                return None;
            }
            loop {
                // Register interest before looking, so that an append between the look and
                // the wait is not missed.
                let notified = log.changed.notified();
                let (ready, done) = log.after(seq);
                if !ready.is_empty() {
                    let mut out = bytes::BytesMut::new();
                    for (s, message) in &ready {
                        out.extend_from_slice(&moat_mcp::sse::encode(
                            Some(&format!("{}.{s}", log.no)),
                            Some("message"),
                            message,
                        ));
                        seq = *s;
                    }
                    drop(notified);
                    // Complete once the last of what we sent is the last there will be.
                    if done {
                        log.delivered.store(true, Ordering::Relaxed);
                    }
                    return Some((Ok(out.freeze()), (log, seq, None, done)));
                }
                if done {
                    return None;
                }
                notified.await;
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn collect(s: impl futures_util::Stream<Item = Result<Bytes, Infallible>>) -> String {
        let parts: Vec<Result<Bytes, Infallible>> = s.collect().await;
        parts.into_iter().map(|p| String::from_utf8(p.unwrap().to_vec()).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_stream_is_primed_then_carries_ids_and_ends_with_the_response() {
        let streams = ResumableStreams::default();
        let (tx, rx) = mpsc::channel(8);
        let log = streams.open(rx);
        tx.send(StreamItem::Related(Bytes::from_static(b"{\"progress\":1}"))).await.unwrap();
        tx.send(StreamItem::Final(Bytes::from_static(b"{\"result\":{}}"))).await.unwrap();
        let text = collect(log.events(0, true)).await;
        assert_eq!(
            text,
            "id: 1.0\nretry: 1000\ndata: \n\nid: 1.1\nevent: message\ndata: {\"progress\":1}\n\n\
             id: 1.2\nevent: message\ndata: {\"result\":{}}\n\n"
        );
    }

    #[tokio::test]
    async fn a_resumed_stream_gets_only_what_came_after_its_last_event() {
        let streams = ResumableStreams::default();
        let (tx, rx) = mpsc::channel(8);
        let _ = streams.open(rx);
        tx.send(StreamItem::Related(Bytes::from_static(b"one"))).await.unwrap();
        // The client saw `1.1`, lost its connection; the response arrives while it is away.
        let (log, seq) = streams.find("1.1").unwrap();
        let resumed = tokio::spawn(collect(log.events(seq, false)));
        tx.send(StreamItem::Related(Bytes::from_static(b"two"))).await.unwrap();
        tx.send(StreamItem::Final(Bytes::from_static(b"answer"))).await.unwrap();
        let text = resumed.await.unwrap();
        assert_eq!(text, "id: 1.2\nevent: message\ndata: two\n\nid: 1.3\nevent: message\ndata: answer\n\n");
    }

    #[tokio::test]
    async fn unknown_or_malformed_ids_find_nothing_and_old_streams_are_forgotten() {
        let streams = ResumableStreams::default();
        let mut senders = Vec::new();
        for _ in 0..MAX_STREAMS + 1 {
            let (tx, rx) = mpsc::channel(1);
            senders.push(tx);
            let _ = streams.open(rx);
        }
        assert!(streams.find("1.0").is_none(), "the oldest stream is forgotten past the bound");
        assert!(streams.find("2.0").is_some());
        for bad in ["", "2", "x.1", "2.-1", "99.0"] {
            assert!(streams.find(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_delivered_stream_is_let_go_and_an_undelivered_one_is_kept_for_its_client() {
        let streams = ResumableStreams::default();
        let delivered = streams.open_answered(Bytes::from_static(b"one"));
        let _ = collect(delivered.events(0, true)).await;
        let _undelivered = streams.open_answered(Bytes::from_static(b"two"));
        // Opening the next stream lets go of the first, which its client read to the end.
        let _ = streams.open_answered(Bytes::from_static(b"three"));
        assert!(streams.find("1.0").is_none());
        assert!(streams.find("2.0").is_some(), "a client that lost `2` may still resume it");
    }

    #[tokio::test]
    async fn a_session_keeps_at_most_its_byte_bound_of_undelivered_streams() {
        let streams = ResumableStreams::default();
        let big = Bytes::from(vec![b'x'; MAX_SESSION_BYTES / 4]);
        for _ in 0..8 {
            let _ = streams.open_answered(big.clone());
        }
        let kept: usize = streams.logs.lock().unwrap().iter().map(|l| l.bytes()).sum();
        assert!(kept <= MAX_SESSION_BYTES + big.len(), "{kept}");
        assert!(streams.find("1.0").is_none() && streams.find("8.0").is_some());
    }

    #[tokio::test]
    async fn a_dropped_call_ends_its_stream() {
        let streams = ResumableStreams::default();
        let (tx, rx) = mpsc::channel(1);
        let log = streams.open(rx);
        drop(tx);
        assert_eq!(collect(log.events(0, false)).await, "");
    }
}
