//! Bearer tokens, shared by the control API and the inference listener: reading the
//! `Authorization` header and comparing secrets in constant time.

use axum::http::{HeaderMap, header};

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the request carries exactly `token`.
pub fn carries(headers: &HeaderMap, token: &str) -> bool {
    bearer(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let mut headers = HeaderMap::new();
        assert!(!carries(&headers, "secret"));
        headers.insert(header::AUTHORIZATION, "Bearer secret".parse().expect("header"));
        assert!(carries(&headers, "secret"));
        assert!(!carries(&headers, "secreT"));
        assert!(!carries(&headers, "secret2"));
    }
}
