//! The stdio front of `moat wrap`: one client on stdin/stdout, one upstream, the same router.

use std::sync::Arc;

use bytes::Bytes;
use moat_mcp::jsonrpc;
use moat_mcp::{Limits, Message, ProtocolVersion};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::router::{Reply, Router, StreamItem};

/// Serves one client on stdin/stdout until stdin closes.
pub async fn serve(router: Arc<Router>, limits: Limits) -> std::io::Result<()> {
    let session = router
        .sessions
        .create(moat_auth::Principal::new("local", moat_auth::AuthMethod::Anonymous), ProtocolVersion::LATEST)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);

    // One writer, so that lines never interleave.
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(b) = out_rx.recv().await {
            if stdout.write_all(&b).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });

    // Server-initiated messages for this client.
    let mut events = session.attach_stream();
    let ev_tx = out_tx.clone();
    let forward_events = tokio::spawn(async move {
        while let Some(b) = events.recv().await {
            if ev_tx.send(b).await.is_err() {
                break;
            }
        }
    });

    let mut reader = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = AsyncReadExt::take(&mut reader, (limits.max_bytes + 1) as u64).read_until(b'\n', &mut line).await?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && line.len() > limits.max_bytes {
            // Over the limit: say so, then skip the rest of the line.
            let _ = out_tx
                .send(jsonrpc::error_response(
                    None,
                    jsonrpc::code::TOO_LARGE,
                    &format!("message is over the limit of {} bytes", limits.max_bytes),
                    None,
                ))
                .await;
            let mut sink = Vec::new();
            reader.read_until(b'\n', &mut sink).await?;
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg = match Message::parse(Bytes::copy_from_slice(text), &limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "refused a malformed message");
                let _ = out_tx.send(jsonrpc::error_response(None, e.code(), &e.to_string(), None)).await;
                continue;
            }
        };
        match router.handle(&session, msg).await {
            Reply::Accepted => {}
            Reply::Message(b) => {
                let _ = out_tx.send(b).await;
            }
            Reply::Stream(mut rx) => {
                let tx = out_tx.clone();
                tokio::spawn(async move {
                    while let Some(item) = rx.recv().await {
                        let (StreamItem::Related(b) | StreamItem::Final(b)) = item;
                        if tx.send(b).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
    // The client is gone: stop forwarding server messages (that task holds a sender and would
    // keep the writer, and so `moat wrap`, alive forever), then let the writer drain.
    forward_events.abort();
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}
