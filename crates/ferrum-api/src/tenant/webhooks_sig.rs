//! Checking that a webhook delivery was signed by the sender that shares its secret, and the
//! key that recognises the sender's retries of one delivery.
//!
//! All three schemes are HMAC-SHA256 over the raw body (Slack's over `v0:<ts>:<body>`),
//! compared in constant time by `hmac`'s `verify_slice`.

use axum::http::HeaderMap;
use chrono::Utc;
use ferrum_model::limits;
use ferrum_model::SignatureScheme;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far Slack's request timestamp may be from now: Slack's own recommendation, which
/// stops a captured request from being replayed later.
const SLACK_WINDOW_SECS: i64 = 300;
/// The header of the generic `hmac` scheme.
pub const HMAC_HEADER: &str = "x-ferrum-signature";

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("the request timestamp is more than {SLACK_WINDOW_SECS} seconds from now")]
    Stale,
    #[error("invalid signature")]
    Mismatch,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(SignatureError::Missing(name))
}

/// Checks that `sig_hex` is HMAC-SHA256 of `parts` under `secret`.
fn check(secret: &str, parts: &[&[u8]], sig_hex: &str) -> Result<(), SignatureError> {
    let sig = hex::decode(sig_hex).map_err(|_| SignatureError::Mismatch)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// Verifies a delivery of `body` with `headers` under `scheme` and `secret`.
pub fn verify(
    scheme: SignatureScheme,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    match scheme {
        SignatureScheme::Slack => {
            let ts = header(headers, "x-slack-request-timestamp")?;
            let sig = header(headers, "x-slack-signature")?;
            let when: i64 = ts.parse().map_err(|_| SignatureError::Stale)?;
            if (Utc::now().timestamp() - when).abs() > SLACK_WINDOW_SECS {
                return Err(SignatureError::Stale);
            }
            let hex = sig.strip_prefix("v0=").ok_or(SignatureError::Mismatch)?;
            check(secret, &[b"v0:", ts.as_bytes(), b":", body], hex)
        }
        SignatureScheme::Github => {
            let sig = header(headers, "x-hub-signature-256")?;
            let hex = sig
                .strip_prefix("sha256=")
                .ok_or(SignatureError::Mismatch)?;
            check(secret, &[body], hex)
        }
        SignatureScheme::Hmac => {
            let sig = header(headers, HMAC_HEADER)?;
            check(secret, &[body], sig.strip_prefix("sha256=").unwrap_or(sig))
        }
    }
}

/// The key that stays the same when a sender retries one delivery, if there is one:
/// `Idempotency-Key`; GitHub's `X-GitHub-Delivery` (kept on redelivery); for Slack (any
/// `X-Slack-*` header) the Events API `event_id`, else a hash of the body, since Slack signs
/// each retry afresh and marks it only with `X-Slack-Retry-Num`.
pub fn delivery_key(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    raw_delivery_key(headers, body).map(bounded_key)
}

/// A key within [`limits::DELIVERY_KEY`]; a longer one (a third party's header or event id
/// can be as long as it likes) is stored as its SHA-256, so it still deduplicates.
fn bounded_key(key: String) -> String {
    if limits::DELIVERY_KEY.check(&key).is_ok() {
        return key;
    }
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

fn raw_delivery_key(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(key) = get("idempotency-key") {
        return Some(format!("key:{key}"));
    }
    if let Some(id) = get("x-github-delivery") {
        return Some(format!("github:{id}"));
    }
    let from_slack = [
        "x-slack-signature",
        "x-slack-retry-num",
        "x-slack-request-timestamp",
    ]
    .iter()
    .any(|h| headers.contains_key(*h));
    if !from_slack {
        return None;
    }
    let event_id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("event_id")?.as_str().map(str::to_owned));
    Some(match event_id {
        Some(id) => format!("slack:{id}"),
        None => format!("slack-body:{}", hex::encode(Sha256::digest(body))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(secret: &str, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        for p in parts {
            mac.update(p);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn slack_signatures_and_their_time_window() {
        let body = b"token=x&text=hi";
        let now = Utc::now().timestamp().to_string();
        let sig = sign("s", &[b"v0:", now.as_bytes(), b":", body]);
        let ok = headers(&[
            ("x-slack-request-timestamp", now.clone()),
            ("x-slack-signature", format!("v0={sig}")),
        ]);
        assert_eq!(verify(SignatureScheme::Slack, "s", &ok, body), Ok(()));
        assert_eq!(
            verify(SignatureScheme::Slack, "other", &ok, body),
            Err(SignatureError::Mismatch)
        );
        let old = (Utc::now().timestamp() - 600).to_string();
        let sig = sign("s", &[b"v0:", old.as_bytes(), b":", body]);
        let stale = headers(&[
            ("x-slack-request-timestamp", old),
            ("x-slack-signature", format!("v0={sig}")),
        ]);
        assert_eq!(
            verify(SignatureScheme::Slack, "s", &stale, body),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn github_and_generic_hmac() {
        let body = b"{\"action\":\"opened\"}";
        let sig = sign("k", &[body]);
        let gh = headers(&[("x-hub-signature-256", format!("sha256={sig}"))]);
        assert_eq!(verify(SignatureScheme::Github, "k", &gh, body), Ok(()));
        let plain = headers(&[(HMAC_HEADER, sig)]);
        assert_eq!(verify(SignatureScheme::Hmac, "k", &plain, body), Ok(()));
        assert_eq!(
            verify(SignatureScheme::Hmac, "k", &HeaderMap::new(), body),
            Err(SignatureError::Missing(HMAC_HEADER))
        );
    }

    #[test]
    fn retries_share_a_delivery_key() {
        let event = br#"{"event_id":"Ev1","type":"event_callback"}"#;
        let first = headers(&[("x-slack-signature", "v0=aa".into())]);
        let retry = headers(&[("x-slack-retry-num", "1".into())]);
        assert_eq!(delivery_key(&first, event), Some("slack:Ev1".into()));
        assert_eq!(delivery_key(&first, event), delivery_key(&retry, event));
        let keyed = headers(&[("idempotency-key", "abc".into())]);
        assert_eq!(delivery_key(&keyed, b""), Some("key:abc".into()));
        assert_eq!(delivery_key(&HeaderMap::new(), b"x"), None);
        let long = headers(&[("idempotency-key", "k".repeat(10_000))]);
        let key = delivery_key(&long, b"").unwrap();
        assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
        assert_eq!(delivery_key(&long, b"other body"), Some(key));
    }
}
