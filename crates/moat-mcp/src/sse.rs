//! Server-Sent Events: an encoder for the streams Moat serves and a bounded, incremental
//! decoder for the streams it reads from upstreams (WHATWG HTML "event stream" rules).

use bytes::{Bytes, BytesMut};

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry_ms: Option<u64>,
}

/// Encodes one event. Newlines in `data` become several `data:` lines; `id` and `event`
/// must not contain line breaks (Moat makes them itself), so any are dropped.
pub fn encode(id: Option<&str>, event: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend(id.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
        out.extend_from_slice(b"\n");
    }
    if let Some(ev) = event {
        out.extend_from_slice(b"event: ");
        out.extend(ev.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
        out.extend_from_slice(b"\n");
    }
    for line in data.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// A priming event: an id with empty data, so a client can resume from the start of a stream.
pub fn encode_priming(id: &str) -> Bytes {
    encode(Some(id), None, b"")
}

/// Why an event stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    #[error("event is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("event stream is not valid UTF-8")]
    InvalidUtf8,
}

/// Incremental decoder: feed it chunks as they arrive, take events as they complete.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_event: usize,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    /// Last id seen, kept across events for `Last-Event-ID`.
    last_id: Option<String>,
    started: bool,
    pending_len: usize,
}

impl Decoder {
    pub fn new(max_event: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max_event,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            retry: None,
            last_id: None,
            started: false,
            pending_len: 0,
        }
    }

    /// The id to send as `Last-Event-ID` when reconnecting.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Adds bytes and returns every event they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        // Each turn takes the next line, ended by \n, \r\n or a lone \r.
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf) {
            let is_cr = self.buf.get(pos) == Some(&b'\r');
            let (line_end, consume) = if is_cr {
                match self.buf.get(pos + 1) {
                    Some(b'\n') => (pos, pos + 2),
                    Some(_) => (pos, pos + 1),
                    // A \r at the end of the buffer may be half of \r\n: wait for more.
                    None => break,
                }
            } else {
                (pos, pos + 1)
            };
            let line = self.buf.split_to(consume);
            let line = line.get(..line_end).unwrap_or_default();
            let mut line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
            if !self.started {
                self.started = true;
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if let Some(ev) = self.line(line)? {
                events.push(ev);
            }
        }
        if self.buf.len() + self.pending_len > self.max_event {
            return Err(SseError::TooLarge { limit: self.max_event });
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                self.pending_len = self.data.len();
                if self.pending_len > self.max_event {
                    return Err(SseError::TooLarge { limit: self.max_event });
                }
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" => self.retry = value.parse().ok(),
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        if let Some(id) = &self.id {
            self.last_id = Some(id.clone());
        }
        let retry = self.retry.take();
        let id = self.id.take();
        let event = self.event.take();
        self.pending_len = 0;
        if !self.has_data || self.data.is_empty() {
            // An event with no data (a priming event, or only a retry) delivers nothing.
            self.has_data = false;
            self.data.clear();
            return None;
        }
        self.has_data = false;
        Some(Event { id, event, data: std::mem::take(&mut self.data), retry_ms: retry })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multiline_data() {
        let enc = encode(Some("7"), Some("message"), b"{\"a\":\n1}");
        let mut d = Decoder::new(1024);
        let evs = d.feed(&enc).unwrap();
        assert_eq!(
            evs,
            vec![Event {
                id: Some("7".into()),
                event: Some("message".into()),
                data: "{\"a\":\n1}".into(),
                retry_ms: None
            }]
        );
        assert_eq!(d.last_event_id(), Some("7"));
    }

    #[test]
    fn decodes_across_chunk_boundaries_and_line_endings() {
        let stream = b"\xef\xbb\xbf: comment\r\nid: 1\r\ndata: a\r\n\r\ndata:b\rdata: c\r\rdata: d\n\n";
        for split in 0..stream.len() {
            let mut d = Decoder::new(1024);
            let (x, y) = stream.split_at(split);
            let mut evs = d.feed(x).unwrap();
            evs.extend(d.feed(y).unwrap());
            let data: Vec<&str> = evs.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, vec!["a", "b\nc", "d"], "split at {split}");
        }
    }

    #[test]
    fn priming_event_sets_last_id_without_delivering() {
        let mut d = Decoder::new(1024);
        assert!(d.feed(&encode_priming("p0")).unwrap().is_empty());
        assert_eq!(d.last_event_id(), Some("p0"));
    }

    #[test]
    fn bounds_event_size() {
        let mut d = Decoder::new(16);
        assert_eq!(d.feed(b"data: 0123456789abcdefXYZ\n").unwrap_err(), SseError::TooLarge { limit: 16 });
        let mut d = Decoder::new(16);
        assert_eq!(d.feed(&[b'x'; 40]).unwrap_err(), SseError::TooLarge { limit: 16 });
    }
}
