//! The network seam: the validator fetches metadata and JWKS and calls introspection through
//! [`HttpClient`], so tests can answer from memory or from a local server.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::Url;
use zeroize::Zeroizing;

/// A boxed, sendable future (what [`HttpClient`] methods return, so the trait is object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Largest metadata, JWKS or introspection answer we read.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// An HTTP answer: status and (bounded) body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a fetch failed (connection, timeout, too large). Never contains credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("request to `{url}` failed: {detail}")]
pub struct FetchError {
    pub url: String,
    pub detail: String,
}

/// The few HTTP calls an OAuth resource server makes.
pub trait HttpClient: Send + Sync + 'static {
    /// `GET url` with `Accept: application/json`.
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>>;

    /// `POST url` with a form body and HTTP Basic client authentication (RFC 6749 §2.3.1:
    /// id and secret are form-urlencoded before base64).
    fn post_form<'a>(
        &'a self,
        url: &'a Url,
        form: &'a [(&'a str, &'a str)],
        basic_auth: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<HttpResponse, FetchError>>;
}

/// [`HttpClient`] over `reqwest` with rustls: no redirects (a redirect could downgrade to http
/// or leave the issuer), 10 s timeout, bodies capped at [`MAX_RESPONSE_BYTES`].
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError { url: String::new(), detail: e.to_string() })?;
        Ok(ReqwestClient { client })
    }
}

impl HttpClient for ReqwestClient {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        Box::pin(async move {
            let req = self.client.get(url.clone()).header("accept", "application/json");
            read(url, req).await
        })
    }

    fn post_form<'a>(
        &'a self,
        url: &'a Url,
        form: &'a [(&'a str, &'a str)],
        basic_auth: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        Box::pin(async move {
            let mut req = self.client.post(url.clone()).header("accept", "application/json").form(form);
            if let Some((id, secret)) = basic_auth {
                let id = form_urlencode(id);
                let secret = Zeroizing::new(form_urlencode(secret));
                req = req.basic_auth(id, Some(secret.as_str()));
            }
            read(url, req).await
        })
    }
}

async fn read(url: &Url, req: reqwest::RequestBuilder) -> Result<HttpResponse, FetchError> {
    let fail = |detail: String| FetchError { url: url.to_string(), detail };
    let mut resp = req.send().await.map_err(|e| fail(without_url(&e)))?;
    let status = resp.status().as_u16();
    if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(fail("response too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(without_url(&e)))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(fail("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, body })
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    // reqwest's Display repeats the URL; walk the sources for the real cause.
    while let Some(err) = source {
        s = err.to_string();
        source = err.source();
    }
    s
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 §2.3.1, Appendix B).
fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn form_urlencodes_client_credentials() {
        assert_eq!(form_urlencode("moat-rs"), "moat-rs");
        assert_eq!(form_urlencode("a:b c/é"), "a%3Ab+c%2F%C3%A9");
    }
}
