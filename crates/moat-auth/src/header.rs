//! Reading a bearer token out of request headers (RFC 6750 §2.1, header method only).

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// Longest token we look at. Entra tokens with many groups reach a few KiB; anything past this
/// is refused before any parsing or crypto.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What the `Authorization` header held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bearer<'a> {
    Absent,
    Token(&'a str),
    /// Present but unusable; the reason is a fixed phrase for logs.
    Malformed(&'static str),
}

/// Extracts the bearer token. Exactly one `Authorization` header, scheme `Bearer` (any case),
/// one space, then a `b64token` (RFC 6750 §2.1). Tokens in the query string or body are never
/// read (the MCP authorization spec forbids them).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Bearer::Absent;
    };
    if values.next().is_some() {
        return Bearer::Malformed("more than one authorization header");
    }
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed("authorization header is not visible ascii");
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Bearer::Malformed("authorization header has no scheme");
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Malformed("authorization scheme is not bearer");
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Bearer::Malformed("empty bearer token");
    }
    if token.len() > MAX_TOKEN_LEN {
        return Bearer::Malformed("bearer token too long");
    }
    if !token.bytes().all(is_b64token_char) {
        return Bearer::Malformed("bearer token has invalid characters");
    }
    Bearer::Token(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`; we accept `=`
/// anywhere, which is harmless.
fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("x")));
        }
        m
    }

    #[test]
    fn parses_bearer_tokens() {
        assert_eq!(bearer_token(&h(&[])), Bearer::Absent);
        assert_eq!(bearer_token(&h(&["Bearer abc.def-_~+/="])), Bearer::Token("abc.def-_~+/="));
        assert_eq!(bearer_token(&h(&["bearer abc"])), Bearer::Token("abc"));
        assert!(matches!(bearer_token(&h(&["Basic abc"])), Bearer::Malformed(_)));
        assert!(matches!(bearer_token(&h(&["Bearer"])), Bearer::Malformed(_)));
        assert!(matches!(bearer_token(&h(&["Bearer  "])), Bearer::Malformed(_)));
        assert!(matches!(bearer_token(&h(&["Bearer a b"])), Bearer::Malformed(_)));
        assert!(matches!(bearer_token(&h(&["Bearer a", "Bearer b"])), Bearer::Malformed(_)));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(matches!(bearer_token(&h(&[&long])), Bearer::Malformed(_)));
    }
}
