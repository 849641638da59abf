//! The S3 backend, for AWS S3 and S3-compatible servers (MinIO, s3s-fs, Ceph, …).
//!
//! [`S3Store`]'s docs give the URL form and where credentials come from.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;

use crate::{check_key, BlobError, BlobStore};
use location::Location;

mod location;

/// Objects in one S3 bucket, optionally under a key prefix.
///
/// # URL form
///
/// `s3://bucket[/prefix]?endpoint=http://127.0.0.1:9000&region=us-east-1`
///
/// - `bucket` must already exist; Ferrum never creates buckets.
/// - `prefix` (optional) is prepended to every key, so several installs can share a bucket.
/// - `endpoint` (optional) is the server's base URL, `http://` or `https://`, written as is (not
///   percent-encoded). Leave it out for AWS S3, where the SDK derives the endpoint from the
///   region.
/// - `region` (optional) defaults to `$AWS_REGION`, then `$AWS_DEFAULT_REGION`, then
///   `us-east-1`, which is what S3-compatible servers expect when they ignore regions.
///
/// Requests use path-style addressing (`endpoint/bucket/key`), which every S3-compatible server
/// accepts and which needs no wildcard DNS.
///
/// # Credentials
///
/// [`crate::open`] reads static credentials from the standard variables `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and, for temporary credentials, `AWS_SESSION_TOKEN`. Profiles,
/// instance metadata and SSO are not consulted: they would pull in `aws-config` and its
/// network lookups for a server that is configured by environment anyway. Callers holding
/// credentials some other way use [`S3Store::from_url`].
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
}

impl fmt::Debug for S3Store {
    // The client's Debug dumps its whole configuration; the location is what helps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Store(s3://{}/{})", self.bucket, self.prefix)
    }
}

impl S3Store {
    /// Connects to the bucket an `s3://` URL names, with credentials from the standard AWS
    /// environment variables.
    pub fn from_env(url: &str) -> Result<Self, BlobError> {
        // Parsed first, so a bad URL is reported as such even where no credentials are set.
        let loc = Location::parse(url)?;
        Ok(Self::connect(loc, credentials_from_env()?))
    }

    /// Connects to the bucket an `s3://` URL names, with the given credentials. Nothing is sent
    /// until the first operation, so a wrong endpoint or bucket shows up there.
    pub fn from_url(url: &str, credentials: Credentials) -> Result<Self, BlobError> {
        Ok(Self::connect(Location::parse(url)?, credentials))
    }

    fn connect(loc: Location, credentials: Credentials) -> Self {
        let region = loc
            .region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut config = aws_sdk_s3::Config::builder()
            .http_client(http_client)
            .credentials_provider(credentials)
            .region(Region::new(region))
            .force_path_style(true)
            // The SDK's default sends a CRC32 trailer in aws-chunked encoding on every PUT,
            // which several S3-compatible servers reject. SigV4 already signs the body's
            // SHA-256, so integrity does not depend on it.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = loc.endpoint {
            config = config.endpoint_url(endpoint);
        }
        S3Store {
            client: Client::from_conf(config.build()),
            bucket: loc.bucket,
            prefix: loc.prefix,
        }
    }

    fn object_key(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// A `Backend` error naming the operation and the object's full address.
    fn error(&self, op: &str, key: &str, cause: String) -> BlobError {
        BlobError::Backend(format!(
            "s3 {op} s3://{}/{}{key}: {cause}",
            self.bucket, self.prefix
        ))
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key)?)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.error("put", key, describe(&e)))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key)?)
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.error("get", key, describe(&e))),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| self.error("get", key, causes(&e)))?;
        Ok(Some(body.into_bytes()))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        // S3 answers 204 for a missing object too, so there is no not-found case to map.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key)?)
            .send()
            .await
            .map_err(|e| self.error("delete", key, describe(&e)))?;
        Ok(())
    }
}

fn credentials_from_env() -> Result<Credentials, BlobError> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            BlobError::Backend(format!(
                "{name} is not set: the s3 blob store takes its credentials from \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ))
        })
    };
    Ok(Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        std::env::var("AWS_SESSION_TOKEN").ok(),
        None,
        "environment",
    ))
}

/// What the server said (`NoSuchBucket (HTTP 404): …`) or, when no answer came, why (timeout,
/// connection refused, TLS). The SDK's own `Display` is often just "service error", and its
/// `DisplayErrorContext` appends a Debug dump of the whole response.
fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (Some(service), Some(response)) = (err.as_service_error(), err.raw_response()) else {
        return causes(err);
    };
    let code = service.code().unwrap_or("unknown error");
    let status = response.status().as_u16();
    match service.message() {
        Some(message) => format!("{code} (HTTP {status}): {message}"),
        None => format!("{code} (HTTP {status})"),
    }
}

/// An error and its sources, outermost first: `dispatch failure: io error: Connection refused`.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
