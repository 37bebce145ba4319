//! OpenTelemetry trace export for `moat gateway` and `moat wrap` (docs/telemetry.md).
//!
//! The gateway makes spans through the OpenTelemetry API ([`moat_gateway::telemetry`]); this
//! module installs what turns them into OTLP/HTTP requests: an SDK tracer provider with a
//! parent-based ratio sampler, a batch span processor, the OTLP exporter (protobuf), and
//! the W3C trace-context propagator. Exports go through the workspace's own `reqwest`
//! (rustls), run on the gateway's tokio runtime: no second HTTP or TLS stack.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use moat_config::telemetry::{OtlpEndpoint, TelemetryConfig};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};

/// The standard variable that names an OTLP endpoint when `[telemetry] otlp_endpoint` does not.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long exit waits for the last spans to leave.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read from the receiver (it only carries a partial-success notice).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The installed exporter; [`Telemetry::shutdown`] flushes the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is queued and stops the exporter. Call it while `rt` still runs.
    pub fn shutdown(self) {
        moat_gateway::telemetry::set_enabled(false);
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "trace export did not finish at exit");
        }
    }
}

/// Installs trace export when an endpoint is configured (`[telemetry] otlp_endpoint`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`); `Ok(None)` when telemetry is off. `rt` runs the exports.
///
/// # Errors
/// When the endpoint in the environment is invalid, a header reference cannot be resolved,
/// or the exporter cannot be built.
pub fn init(
    config: &TelemetryConfig,
    base_dir: &Path,
    rt: tokio::runtime::Handle,
) -> anyhow::Result<Option<Telemetry>> {
    let Some(endpoint) = endpoint(config)? else { return Ok(None) };
    let mut headers = HashMap::new();
    for (name, reference) in &config.headers {
        let secret = reference
            .resolve(base_dir)
            .with_context(|| format!("cannot resolve `telemetry.headers.{}`", name.as_str()))?;
        let value =
            secret.expose_str().with_context(|| format!("`telemetry.headers.{}` is not valid UTF-8", name.as_str()))?;
        headers.insert(name.as_str().to_string(), value.trim().to_string());
    }
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        // An export carries the collector's credentials: never to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client for trace export")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(headers)
        .with_http_client(TokioHttpClient { client, rt })
        .build()
        .context("cannot build the OTLP trace exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio.get()))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    moat_gateway::telemetry::set_enabled(true);
    tracing::info!(endpoint = %endpoint.traces_url(), sample_ratio = config.sample_ratio.get(), "exporting traces over OTLP/HTTP");
    Ok(Some(Telemetry { provider }))
}

/// The configured endpoint, else the standard environment variable's (checked the same way).
fn endpoint(config: &TelemetryConfig) -> anyhow::Result<Option<OtlpEndpoint>> {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if let Some(e) = &config.otlp_endpoint {
        return Ok(Some(e.clone()));
    }
    match std::env::var(ENDPOINT_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            OtlpEndpoint::parse(v.trim()).map(Some).map_err(|e| anyhow::anyhow!("`{ENDPOINT_ENV}`: {e}"))
        }
        _ => Ok(None),
    }
}

/// The exporter's HTTP client: the batch processor exports from its own thread, so each
/// request is handed to the gateway's tokio runtime, where `reqwest` runs.
#[derive(Debug)]
struct TokioHttpClient {
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let task = self.rt.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut resp =
                client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
            let mut out = http::Response::builder().status(resp.status());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            Ok::<_, opentelemetry_http::HttpError>(out.body(Bytes::from(body))?)
        });
        task.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_endpoint_wins() {
        let c = TelemetryConfig {
            otlp_endpoint: Some(OtlpEndpoint::parse("http://127.0.0.1:4318/").unwrap()),
            ..TelemetryConfig::default()
        };
        assert_eq!(endpoint(&c).unwrap().unwrap().traces_url(), "http://127.0.0.1:4318/v1/traces");
    }
}
