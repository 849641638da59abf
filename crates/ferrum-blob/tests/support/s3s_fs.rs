//! A real S3-compatible server for the S3 tests: the `s3s-fs` binary, installed by
//! `scripts/s3-server`.
//!
//! Each test starts its own server on a free loopback port with its own data directory and
//! keys, so tests stay independent and run in parallel; dropping the [`S3sFs`] kills it, also
//! when the test panics. A missing binary fails the test: silently skipping would let a broken
//! S3 backend pass CI.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};

use super::temp_dir::TempDir;

pub struct S3sFs {
    child: Child,
    endpoint: String,
    credentials: Credentials,
    data: TempDir,
}

impl S3sFs {
    /// Starts a server and waits until it accepts connections.
    pub async fn start() -> S3sFs {
        let binary = binary();
        let mut last_failure = String::new();
        // Another process can take the free port between our probe and the server's bind;
        // a retry on a fresh port covers that.
        for _ in 0..3 {
            let data = TempDir::new("s3s");
            let port = free_port();
            let (key, secret) = (
                format!("ferrum-key-{port}"),
                format!("ferrum-secret-{port}"),
            );
            let log = std::fs::File::create(data.path().join("server.log")).unwrap();
            let store = data.path().join("store");
            std::fs::create_dir(&store).unwrap();
            let child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &key, "--secret-key", &secret])
                .arg(&store)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = S3sFs {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                credentials: Credentials::new(key, secret, None, None, "test"),
                data,
            };
            match server.wait_ready(port).await {
                Ok(()) => return server,
                Err(e) => last_failure = e,
            }
        }
        panic!("s3s-fs did not start: {last_failure}");
    }

    async fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.data.path().join("server.log"));
                return Err(format!("exited with {status}: {}", log.unwrap_or_default()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no answer on its port within 10s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The credentials this server accepts.
    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    /// A `ferrum_blob::open`-style URL for a bucket on this server.
    pub fn url(&self, bucket_and_prefix: &str) -> String {
        format!(
            "s3://{bucket_and_prefix}?endpoint={}&region=us-east-1",
            self.endpoint
        )
    }

    /// Creates a bucket through the SDK, as an operator would; `S3Store` never creates them.
    pub async fn create_bucket(&self, name: &str) {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .credentials_provider(self.credentials())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$FERRUM_S3S_FS`, else `s3s-fs` on PATH, else `~/.cargo/bin/s3s-fs` — the same order as
/// `scripts/s3-server path`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRUM_S3S_FS").map(PathBuf::from) {
        assert!(
            path.is_file(),
            "FERRUM_S3S_FS={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .chain(cargo_home.map(|h| h.join("bin/s3s-fs")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the S3 tests need the s3s-fs binary and found none (looked at $FERRUM_S3S_FS, \
                 PATH and ~/.cargo/bin): run scripts/s3-server to install it"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
