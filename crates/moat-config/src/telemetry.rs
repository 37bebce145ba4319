//! `[telemetry]`: OpenTelemetry traces exported over OTLP/HTTP (docs/telemetry.md).
//!
//! Every value is checked while it is read (parse, don't validate), so a bad endpoint or
//! ratio is reported by the TOML reader at its own line and column, like any type error.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SecretRef;

/// `[telemetry]`: where spans go. Off (nothing is exported, no trace context is read or
/// sent) unless `otlp_endpoint` is set here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http(s)://host:port`, optionally a path prefix);
    /// spans are posted to `<endpoint>/v1/traces` as protobuf.
    #[serde(default)]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// `service.name` of the exported resource.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces sampled, 0.0 to 1.0. A request that arrives with a W3C
    /// `traceparent` follows its caller's sampling decision.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: SampleRatio,
    /// Extra headers on every export request (a collector's API key), by reference only.
    #[serde(default)]
    pub headers: BTreeMap<HeaderName, SecretRef>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
            headers: BTreeMap::new(),
        }
    }
}

fn default_service_name() -> String {
    "moat".to_string()
}

fn default_sample_ratio() -> SampleRatio {
    SampleRatio(1.0)
}

/// An OTLP/HTTP base URL: `http://` or `https://`, a host, and no query, fragment or user
/// information (credentials go in `headers`, by reference). Kept without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// Checks `s`; the error is one sentence naming what is wrong.
    ///
    /// # Errors
    /// When `s` is not an `http(s)://host[:port][/path]` URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("invalid OTLP endpoint `{s}`: {why}"));
        let Some((scheme, rest)) = s.split_once("://") else {
            return bad("expected `http://host:port` or `https://host:port`");
        };
        if scheme != "http" && scheme != "https" {
            return bad("the scheme must be `http` or `https`");
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return bad("the host is missing");
        }
        if authority.contains('@') {
            return bad(
                "user information is not allowed; put credentials in `headers` as `env:` or `file:` references",
            );
        }
        if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("a query, a fragment or white space is not allowed");
        }
        Ok(OtlpEndpoint(s.trim_end_matches('/').to_string()))
    }

    /// The base URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where spans are posted: `<base>/v1/traces` (the OTLP/HTTP signal path).
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.0)
    }
}

impl<'de> Deserialize<'de> for OtlpEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OtlpEndpoint::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for OtlpEndpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A sampling ratio in `[0.0, 1.0]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SampleRatio(f64);

impl SampleRatio {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for SampleRatio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&v) {
            Ok(SampleRatio(v))
        } else {
            Err(serde::de::Error::custom(format!("sample ratio `{v}` is out of range; expected 0.0 to 1.0")))
        }
    }
}

/// An HTTP header name: letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HeaderName(String);

impl HeaderName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            Ok(HeaderName(s))
        } else {
            Err(serde::de::Error::custom(format!("invalid header name `{s}`; expected letters, digits, `-` or `_`")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        telemetry: TelemetryConfig,
    }

    fn parse(s: &str) -> Result<TelemetryConfig, String> {
        toml::from_str::<Doc>(s).map(|d| d.telemetry).map_err(|e| e.to_string())
    }

    /// Through the real loader: the errors users see (message, key, line; never the source line).
    #[allow(clippy::result_large_err)]
    fn load(s: &str) -> Result<TelemetryConfig, crate::ConfigError> {
        crate::parse(s, crate::Origin::Embedded)
            .map(|l| l.config.telemetry)
            .map_err(|mut e| e.0.pop().expect("one error"))
    }

    #[test]
    fn off_by_default() {
        let t = parse("").unwrap();
        assert_eq!(t, TelemetryConfig::default());
        assert!(t.otlp_endpoint.is_none());
        assert_eq!(t.service_name, "moat");
        assert_eq!(t.sample_ratio.get(), 1.0);
    }

    #[test]
    fn keys_are_read() {
        let t = parse(
            "[telemetry]\notlp_endpoint = \"https://otel.example:4318/\"\nservice_name = \"edge\"\nsample_ratio = 0.25\n\
             headers = { x-api-key = \"env:OTEL_KEY\" }\n",
        )
        .unwrap();
        let ep = t.otlp_endpoint.unwrap();
        assert_eq!(ep.as_str(), "https://otel.example:4318");
        assert_eq!(ep.traces_url(), "https://otel.example:4318/v1/traces");
        assert_eq!(t.service_name, "edge");
        assert_eq!(t.sample_ratio.get(), 0.25);
        assert_eq!(t.headers.values().next(), Some(&SecretRef::Env("OTEL_KEY".into())));
    }

    #[test]
    fn bad_values_are_errors_at_their_line() {
        for (doc, needle) in [
            ("[telemetry]\notlp_endpoint = \"localhost:4318\"\n", "expected `http://host:port`"),
            ("[telemetry]\notlp_endpoint = \"127.0.0.1\"\n", "expected `http://host:port`"),
            ("[telemetry]\notlp_endpoint = \"grpc://127.0.0.1:4317\"\n", "scheme"),
            ("[telemetry]\notlp_endpoint = \"http://\"\n", "host is missing"),
            ("[telemetry]\notlp_endpoint = \"https://user:pw@otel.example\"\n", "user information"),
            ("[telemetry]\notlp_endpoint = \"http://h:1/x?k=v\"\n", "query"),
            ("[telemetry]\nsample_ratio = 1.5\n", "out of range"),
            ("[telemetry]\nsample_ratio = -0.1\n", "out of range"),
            ("[telemetry]\nsample_ratio = \"half\"\n", "invalid type"),
            ("[telemetry]\nheaders = { \"bad header\" = \"env:X\" }\n", "invalid header name"),
        ] {
            let e = load(doc).unwrap_err();
            assert!(e.message.contains(needle), "{doc:?}: {e}");
            assert_eq!(e.line, Some(2), "{doc:?}: {e}");
            assert!(e.key.as_deref().is_some_and(|k| k.starts_with("telemetry.")), "{doc:?}: {e:?}");
        }
    }

    #[test]
    fn inline_header_secret_is_refused() {
        let e = load("[telemetry]\nheaders = { authorization = \"Bearer abc123\" }\n").unwrap_err();
        assert!(e.message.contains("env:NAME"), "{e}");
        assert!(!e.to_string().contains("abc123"), "the value must not be echoed: {e}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let e = parse("[telemetry]\notlp_endpiont = \"http://127.0.0.1:4318\"\n").unwrap_err();
        assert!(e.contains("otlp_endpiont"), "{e}");
    }
}
