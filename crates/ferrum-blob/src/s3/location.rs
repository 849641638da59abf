//! Parsing the `s3://bucket[/prefix]?endpoint=…&region=…` URL (documented on `S3Store`).

use crate::{check_key, BlobError};

/// The parts of an `s3://` URL.
#[derive(Debug, PartialEq)]
pub(super) struct Location {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl Location {
    pub fn parse(url: &str) -> Result<Self, BlobError> {
        let invalid = |reason: &str| BlobError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://bucket[/prefix]?endpoint=…&region=…"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(invalid("missing bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|_| invalid("prefix must be a valid blob key"))?;
        }
        let mut loc = Location {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: None,
            region: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) if v.starts_with("http://") || v.starts_with("https://") => {
                    loc.endpoint = Some(v.to_owned());
                }
                Some(("endpoint", _)) => {
                    return Err(invalid("endpoint must start with http:// or https://"))
                }
                Some(("region", v)) if !v.is_empty() => loc.region = Some(v.to_owned()),
                _ => {
                    return Err(invalid(&format!(
                        "unknown or empty query parameter {pair:?}"
                    )))
                }
            }
        }
        Ok(loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url() {
        let loc =
            Location::parse("s3://code/prod/zips/?endpoint=http://127.0.0.1:9000&region=eu-west-1")
                .unwrap();
        assert_eq!(
            loc,
            Location {
                bucket: "code".into(),
                prefix: "prod/zips/".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("eu-west-1".into()),
            }
        );
    }

    #[test]
    fn parses_bare_bucket() {
        let loc = Location::parse("s3://code").unwrap();
        assert_eq!((loc.bucket.as_str(), loc.prefix.as_str()), ("code", ""));
        assert_eq!((loc.endpoint, loc.region), (None, None));
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "s3://",
            "s3:///prefix",
            "s3://b/../x",
            "s3://b?endpoint=127.0.0.1:9000",
            "s3://b?endpoint=http%3A%2F%2Fh",
            "s3://b?regoin=us-east-1",
            "s3://b?region=",
            "file:///tmp",
        ] {
            assert!(
                matches!(Location::parse(url), Err(BlobError::InvalidUrl { .. })),
                "{url} should be rejected"
            );
        }
    }
}
