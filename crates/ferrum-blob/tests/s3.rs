//! S3-only behaviour the shared contract cannot express: where objects land under a prefix, and
//! that server-side failures surface as errors rather than as missing objects.
//!
//! Runs against a real s3s-fs server; fails when it is not installed: run `scripts/s3-server`.

mod support;

use bytes::Bytes;
use ferrum_blob::{BlobError, BlobStore, S3Store};
use support::s3s_fs::S3sFs;

#[tokio::test]
async fn prefix_is_prepended_to_keys() {
    let server = S3sFs::start().await;
    server.create_bucket("code").await;
    let prefixed = S3Store::from_url(&server.url("code/tenant-a/"), server.credentials()).unwrap();
    let whole_bucket = S3Store::from_url(&server.url("code"), server.credentials()).unwrap();

    prefixed
        .put("app.zip", Bytes::from_static(b"zip"))
        .await
        .unwrap();

    let seen = whole_bucket.get("tenant-a/app.zip").await.unwrap();
    assert_eq!(seen.as_deref(), Some(&b"zip"[..]));
    assert_eq!(whole_bucket.get("app.zip").await.unwrap(), None);
}

/// `NoSuchBucket` is a 404 like `NoSuchKey`; treating it as "nothing there" would make a
/// misconfigured install look healthy. Checked on delete: s3s-fs answers a GET in a missing
/// bucket with `NoSuchKey` (AWS says `NoSuchBucket`), so `get`'s mapping, which only
/// accepts `NoSuchKey`, cannot be told apart here.
#[tokio::test]
async fn missing_bucket_is_an_error() {
    let server = S3sFs::start().await;
    let store = S3Store::from_url(&server.url("nope"), server.credentials()).unwrap();

    let err = store.delete("app.zip").await.unwrap_err();

    let BlobError::Backend(msg) = err else {
        panic!("expected a backend error, got {err:?}")
    };
    assert!(
        msg.contains("s3 delete s3://nope/app.zip") && msg.contains("NoSuchBucket"),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_an_error() {
    let server = S3sFs::start().await;
    server.create_bucket("code").await;
    let wrong = aws_sdk_s3::config::Credentials::new("ferrum-key", "wrong", None, None, "test");
    let store = S3Store::from_url(&server.url("code"), wrong).unwrap();

    let err = store
        .put("app.zip", Bytes::from_static(b"zip"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, BlobError::Backend(msg) if msg.contains("s3 put")),
        "{err:?}"
    );
}

#[tokio::test]
async fn open_reports_a_bad_s3_url_before_reading_credentials() {
    let opened = ferrum_blob::open("s3://code?endpoint=127.0.0.1:9000").await;
    assert!(matches!(opened, Err(BlobError::InvalidUrl { .. })));
}
