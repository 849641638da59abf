//! The API door: the one way out of the isolated network to the host. The runner listens on
//! the bridge's gateway address and forwards each connection, byte for byte, to the API it
//! talks to itself, so a task's official client reaches Ferrum even when the API listens on
//! the runner host's loopback or on another host. The host filter (`network.rs`) accepts
//! connections only to sockets bound to the gateway address itself, which is this listener.
//!
//! With several API replicas, each connection goes to the replica the last one reached, or,
//! when that one cannot be reached, to the next in turn: a task's client follows the replicas
//! that are up as the runner does. The listener is made in the Docker engine's network
//! namespace when the runner is in another one (`netns.rs`); the forwarded connections leave
//! from the runner's own.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{netns, ApiDoor, ExecError};

/// How long the door waits for a replica to accept before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The open door; dropping it closes the listener (connections in flight finish).
#[derive(Debug)]
pub(crate) struct DoorGuard {
    accept: JoinHandle<()>,
}

impl Drop for DoorGuard {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Where the door forwards to: the API URL's scheme, host and port.
pub(crate) struct Target {
    pub protocol: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Reads an API base URL such as `http://127.0.0.1:8080`.
    pub fn parse(api: &str) -> Result<Target, ExecError> {
        let url = reqwest::Url::parse(api)
            .map_err(|e| ExecError::Sandbox(format!("API URL {api:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| ExecError::Sandbox(format!("API URL {api:?} has no host")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ExecError::Sandbox(format!("API URL {api:?} has no port")))?;
        Ok(Target {
            protocol: url.scheme().to_owned(),
            // IPv6 literals come back bracketed; connect() wants them bare.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// Reads the replicas' base URLs: at least one, all of one scheme (a task gets one
    /// `IRON_PROTOCOL` whichever replica its connection reaches).
    pub fn parse_all(apis: &[impl AsRef<str>]) -> Result<Vec<Target>, ExecError> {
        let targets = apis
            .iter()
            .map(|api| Target::parse(api.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = targets.first() else {
            return Err(ExecError::Sandbox("no API URL given".to_owned()));
        };
        if let Some(other) = targets.iter().find(|t| t.protocol != first.protocol) {
            return Err(ExecError::Sandbox(format!(
                "the API URLs mix {} and {}: give every replica one scheme",
                first.protocol, other.protocol
            )));
        }
        Ok(targets)
    }

    /// The door a task uses when the operator's own network routes to the API directly.
    pub fn as_door(&self) -> ApiDoor {
        ApiDoor {
            protocol: self.protocol.clone(),
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// Listens on `gateway:port` (0: any free port; in the network namespace `netns` when given)
/// and forwards every connection to one of `targets`.
pub(crate) async fn open(
    gateway: Ipv4Addr,
    port: u16,
    targets: Vec<Target>,
    netns: Option<&Path>,
) -> Result<(ApiDoor, DoorGuard), ExecError> {
    let addr = SocketAddr::from((gateway, port));
    let bind = move || {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| bind_error(addr, e))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let listener = match netns {
        Some(path) => netns::run_in(path, bind)?,
        None => bind()?,
    };
    let listener = TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let door = ApiDoor {
        protocol: targets[0].protocol.clone(),
        host: gateway.to_string(),
        port: bound.port(),
    };
    let shown: Vec<String> = targets
        .iter()
        .map(|t| format!("{}:{}", t.host, t.port))
        .collect();
    tracing::info!(door = %bound, api = %shown.join(","), "API door open");
    let targets = Arc::new(Targets {
        list: targets,
        current: AtomicUsize::new(0),
    });
    let accept = tokio::spawn(accept_loop(listener, targets));
    Ok((door, DoorGuard { accept }))
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> ExecError {
    let hint = if e.kind() == std::io::ErrorKind::AddrNotAvailable {
        " (the bridge's gateway is not an address of the runner's network namespace: run the \
         runner in the Docker engine's, or name the engine's with --engine-netns)"
    } else {
        ""
    };
    ExecError::Sandbox(format!("API door on {addr}: {e}{hint}"))
}

/// The replicas a door forwards to, and the one the last connection reached.
struct Targets {
    list: Vec<Target>,
    current: AtomicUsize,
}

async fn accept_loop(listener: TcpListener, targets: Arc<Targets>) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "API door accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let targets = targets.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(inbound, &targets).await {
                tracing::debug!(%peer, error = %e, "API door connection ended");
            }
        });
    }
}

async fn forward(mut inbound: TcpStream, targets: &Targets) -> std::io::Result<()> {
    let mut outbound = connect(targets).await?;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}

/// Connects to the replica the last connection reached, else to the next that accepts.
async fn connect(targets: &Targets) -> std::io::Result<TcpStream> {
    let n = targets.list.len();
    let first = targets.current.load(Ordering::Relaxed);
    let mut failure = std::io::Error::other("no API replica");
    for i in 0..n {
        let at = (first + i) % n;
        let Target { host, port, .. } = &targets.list[at];
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), *port)));
        match attempt.await {
            Ok(Ok(stream)) => {
                targets.current.store(at, Ordering::Relaxed);
                return Ok(stream);
            }
            Ok(Err(e)) => failure = e,
            Err(_) => failure = std::io::ErrorKind::TimedOut.into(),
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_share_one_scheme() {
        let both = Target::parse_all(&["http://10.0.0.1:8080", "http://api-2/"]).unwrap();
        let ends: Vec<_> = both.iter().map(|t| (t.host.as_str(), t.port)).collect();
        assert_eq!(ends, [("10.0.0.1", 8080), ("api-2", 80)]);
        let mixed = Target::parse_all(&["http://api-1:8080", "https://api-2:8443"]);
        assert!(matches!(mixed, Err(e) if e.to_string().contains("one scheme")));
        assert!(Target::parse_all(&[] as &[&str]).is_err());
    }
}
