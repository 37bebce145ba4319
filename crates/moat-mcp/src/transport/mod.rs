//! Transports to upstream servers. Each delivers what it reads as [`Inbound`] messages on a
//! channel and closes that channel when the upstream is gone; [`crate::Connection`]
//! correlates responses on top.

pub mod http;
pub mod stdio;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use crate::jsonrpc::{Id, Message};

/// A message read from an upstream.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub msg: Message,
    /// Id of the request whose HTTP response stream carried this message, when known. Over
    /// stdio nothing ties a server request to the call that caused it, so this is `None`.
    pub related: Option<Id>,
}

/// A message to write, with the envelope facts a transport needs.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub bytes: Bytes,
    /// Set for requests: the id the answer will carry.
    pub request_id: Option<Id>,
    pub method: Option<String>,
    /// Headers for this message alone (the caller's W3C trace context), sent by HTTP
    /// transports on its POST; stdio has nowhere to put them.
    pub headers: HeaderMap,
}

/// Why a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("upstream is not running")]
    Closed,
    #[error("upstream rejected the message: {0}")]
    Rejected(String),
}

/// Either transport, behind one `send`.
#[derive(Debug, Clone)]
pub enum Transport {
    Stdio(stdio::StdioTransport),
    Http(http::HttpTransport),
}

impl Transport {
    pub async fn send(&self, out: Outbound) -> Result<(), TransportError> {
        match self {
            Transport::Stdio(t) => t.send(out).await,
            Transport::Http(t) => t.send(out).await,
        }
    }

    /// Tells the transport the negotiated protocol version (sent as a header over HTTP).
    pub fn set_protocol_version(&self, v: &str) {
        if let Transport::Http(t) = self {
            t.set_protocol_version(v);
        }
    }

    /// Called once the upstream session is initialized (opens the HTTP GET stream).
    pub fn initialized(&self) {
        if let Transport::Http(t) = self {
            t.open_event_stream();
        }
    }

    /// Ends the upstream session (DELETE over HTTP, kill for stdio).
    pub async fn shutdown(&self) {
        match self {
            Transport::Stdio(t) => t.shutdown().await,
            Transport::Http(t) => t.shutdown().await,
        }
    }
}

/// Makes an error response for `id`, for failures the transport itself detects.
pub(crate) fn synthesized_error(id: &Id, code: i64, message: &str) -> Option<Message> {
    let bytes = crate::jsonrpc::error_response(Some(id), code, message, None);
    Message::parse(bytes, &crate::Limits::upstream()).ok()
}
