//! A connection to one upstream: sends requests with ids of its own, matches the answers,
//! and hands everything else (server requests and notifications) to its owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::jsonrpc::{self, Id, Message};
pub use crate::transport::Inbound;
use crate::transport::{Outbound, Transport};

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("upstream `{0}` is not running")]
    Closed(String),
    #[error("upstream `{0}` did not answer within {1:?}")]
    Timeout(String, Duration),
}

/// One upstream session's request/response bookkeeping.
#[derive(Debug)]
pub struct Connection {
    name: String,
    transport: Transport,
    pending: Mutex<HashMap<Id, oneshot::Sender<(Message, u64)>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Messages handed to the owner so far. A response carries this count as it stood when
    /// the response arrived, so the owner can finish handling everything the upstream sent
    /// before it (progress, logging) before it sends the response on.
    forwarded: AtomicU64,
}

impl Connection {
    /// Wraps a transport and starts reading `inbound`. Returns the connection and the channel
    /// of messages that are not answers to its requests. That channel closes when the
    /// upstream is gone; every request still waiting then fails with `Closed`.
    pub fn start(
        name: &str,
        transport: Transport,
        mut inbound: mpsc::Receiver<Inbound>,
    ) -> (Arc<Connection>, mpsc::Receiver<Inbound>) {
        let conn = Arc::new(Connection {
            name: name.to_string(),
            transport: transport.clone(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
        });
        let (events_tx, events_rx) = mpsc::channel(256);
        let reader = conn.clone();
        let mut http_closed = match &transport {
            Transport::Http(t) => Some(t.closed()),
            Transport::Stdio(_) => None,
        };
        tokio::spawn(async move {
            loop {
                let next = match http_closed.as_mut() {
                    Some(w) => tokio::select! {
                        m = inbound.recv() => m,
                        _ = w.wait_for(|c| *c) => None,
                    },
                    None => inbound.recv().await,
                };
                let Some(inb) = next else { break };
                if inb.msg.is_response() {
                    if let Some(id) = inb.msg.id() {
                        let waiter = reader.pending.lock().ok().and_then(|mut p| p.remove(id));
                        if let Some(w) = waiter {
                            let _ = w.send((inb.msg, reader.forwarded.load(Ordering::SeqCst)));
                            continue;
                        }
                    }
                }
                reader.forwarded.fetch_add(1, Ordering::SeqCst);
                if events_tx.send(inb).await.is_err() {
                    break;
                }
            }
            reader.closed.store(true, Ordering::SeqCst);
            // Dropping the senders fails every waiting request.
            if let Ok(mut p) = reader.pending.lock() {
                p.clear();
            }
        });
        (conn, events_rx)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A fresh request id, unique on this connection.
    pub fn next_id(&self) -> Id {
        Id::num(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a request whose bytes already carry `id` and waits for its answer.
    pub async fn call_raw(
        &self,
        id: Id,
        method: &str,
        bytes: Bytes,
        timeout: Duration,
    ) -> Result<Message, ConnectionError> {
        self.call_ordered(id, method, bytes, timeout, HeaderMap::new()).await.map(|(m, _)| m)
    }

    /// Like [`Connection::call_raw`], also returning how many non-response messages had been
    /// handed to the owner when the answer arrived (see `forwarded`). `headers` travel with
    /// this request alone, on HTTP upstreams (trace context).
    pub async fn call_ordered(
        &self,
        id: Id,
        method: &str,
        bytes: Bytes,
        timeout: Duration,
        headers: HeaderMap,
    ) -> Result<(Message, u64), ConnectionError> {
        let (tx, rx) = oneshot::channel();
        if self.is_closed() {
            return Err(ConnectionError::Closed(self.name.clone()));
        }
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), tx);
        }
        let out = Outbound { bytes, request_id: Some(id.clone()), method: Some(method.to_string()), headers };
        if self.transport.send(out).await.is_err() {
            self.forget(&id);
            return Err(ConnectionError::Closed(self.name.clone()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(_)) => Err(ConnectionError::Closed(self.name.clone())),
            Err(_) => {
                self.forget(&id);
                // Tell the upstream to stop working on it.
                let params = serde_json::json!({ "requestId": serde_json::from_str::<serde_json::Value>(id.as_json()).unwrap_or_default(), "reason": "timeout" });
                let _ = self.notify("notifications/cancelled", Some(&jsonrpc::to_raw(&params))).await;
                Err(ConnectionError::Timeout(self.name.clone(), timeout))
            }
        }
    }

    /// Sends a request Moat makes itself and waits for the answer.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Message, ConnectionError> {
        let id = self.next_id();
        let bytes = jsonrpc::request(&id, method, params);
        self.call_raw(id, method, bytes, timeout).await
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<&RawValue>) -> Result<(), ConnectionError> {
        self.send_raw(jsonrpc::notification(method, params), Some(method)).await
    }

    /// Sends bytes that need no answer (a notification, or a response to a server request).
    pub async fn send_raw(&self, bytes: Bytes, method: Option<&str>) -> Result<(), ConnectionError> {
        let out = Outbound { bytes, request_id: None, method: method.map(str::to_string), headers: HeaderMap::new() };
        self.transport.send(out).await.map_err(|_| ConnectionError::Closed(self.name.clone()))
    }

    /// Stops waiting for `id` (the caller gave up).
    pub fn forget(&self, id: &Id) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }

    /// How many requests are waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}
