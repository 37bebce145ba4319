//! The admin listener (docs/telemetry.md): `GET /metrics`, `GET /healthz`, `GET /readyz`.
//!
//! It is separate from the MCP endpoint and carries no authentication, so it listens on
//! loopback by default (`[admin] listen`); expose it only to the network the scraper is on.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
///
/// `ready` is asked on every `GET /readyz`; it should say whether every upstream is up.
/// Errors are those of accepting connections on `listener`.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: impl Fn() -> bool + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(endpoint = %format!("http://{addr}/metrics"), "admin listener up");
    }
    axum::serve(listener, admin_app(metrics, ready)).with_graceful_shutdown(shutdown).await
}

/// The admin endpoints as an axum app, for embedding or testing without a socket.
pub fn admin_app(metrics: Arc<Metrics>, ready: impl Fn() -> bool + Send + Sync + 'static) -> axum::Router {
    let state = AdminState { metrics, ready: Arc::new(ready) };
    axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// The Prometheus text format, or OpenMetrics when the scraper asks for it (Prometheus does,
/// in its `Accept` header).
async fn metrics_handler(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if wants_openmetrics(&headers) {
        ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], s.metrics.encode_openmetrics()).into_response()
    } else {
        ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], s.metrics.encode()).into_response()
    }
}

/// Liveness: the process runs and answers.
async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n")
}

/// Readiness: 200 while every upstream is up, else 503 naming the upstreams last seen down.
async fn readyz(State(s): State<AdminState>) -> Response {
    if (s.ready)() {
        return (StatusCode::OK, Json(serde_json::json!({ "status": "ready" }))).into_response();
    }
    let down = s.metrics.upstreams_down();
    let reason = if down.is_empty() {
        "not every upstream is up".to_owned()
    } else {
        format!("upstreams down: {}", down.join(", "))
    };
    let body = serde_json::json!({ "status": "not ready", "reason": reason, "upstreams_down": down });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Whether an `Accept` header lists OpenMetrics with a non-zero quality.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let is_openmetrics = parts.next().is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"));
        let q_zero = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        is_openmetrics && !q_zero
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for() {
        // Prometheus 2.x's scrape Accept header.
        assert!(wants_openmetrics(&accept(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(&accept("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(!wants_openmetrics(&accept("application/openmetrics-text; q=0")));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
