//! What the gateway knows of the request being handled beyond its message: where it came from,
//! and the caller's OAuth token for upstreams that act on the caller's behalf.
//!
//! The front sets it around the router ([`scope`]); the router carries it into the task it
//! spawns for a call ([`current`] then [`scope`] again), so that the audit record of the call
//! names the source address and an on-behalf-of upstream call can exchange the caller's token.
//! A task-local, not a parameter, because the facts are needed deep in the call path (audit
//! commit, upstream authorization) and by nothing in between.

use std::net::SocketAddr;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The request being handled.
#[derive(Clone, Default)]
pub struct RequestContext {
    /// The client's address (the TCP peer; behind a reverse proxy, the proxy's).
    pub source: Option<SocketAddr>,
    /// The caller's OAuth access token, for upstreams with `grant = "token_exchange"`. Never
    /// an API key, and never sent anywhere but to the token endpoint.
    pub caller: Option<moat_auth::SubjectToken>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("source", &self.source)
            .field("caller", &self.caller.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Runs `fut` (the handling of one request, or a task spawned for it) inside `cx`.
pub async fn scope<F: std::future::Future>(cx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(cx, fut).await
}

/// The request being handled; empty outside any (a list fetched for the catalogue, `moat wrap`).
pub fn current() -> RequestContext {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_is_seen_inside_its_scope_and_carried_into_spawned_tasks() {
        assert!(current().source.is_none());
        let source: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let seen = scope(RequestContext { source: Some(source), caller: None }, async {
            let cx = current();
            tokio::spawn(scope(cx, async { current().source })).await.unwrap()
        })
        .await;
        assert_eq!(seen, Some(source));
    }
}
