//! The API door: the one way out of the isolated network to the host. The runner listens on
//! the bridge's gateway address and forwards each connection, byte for byte, to the API it
//! talks to itself, so a task's official client reaches Ferrum even when the API listens on
//! the runner host's loopback or on another host. The host filter (`network.rs`) accepts
//! connections only to sockets bound to the gateway address itself, which is this listener.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{ApiDoor, ExecError};

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

    /// The door a task uses when the operator's own network routes to the API directly.
    pub fn as_door(&self) -> ApiDoor {
        ApiDoor {
            protocol: self.protocol.clone(),
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// Listens on `gateway:port` (0: any free port) and forwards every connection to `target`.
pub(crate) async fn open(
    gateway: Ipv4Addr,
    port: u16,
    target: Target,
) -> Result<(ApiDoor, DoorGuard), ExecError> {
    let listener = TcpListener::bind(SocketAddr::from((gateway, port)))
        .await
        .map_err(|e| ExecError::Sandbox(format!("API door on {gateway}:{port}: {e}")))?;
    let bound = listener.local_addr()?;
    let door = ApiDoor {
        protocol: target.protocol.clone(),
        host: gateway.to_string(),
        port: bound.port(),
    };
    tracing::info!(door = %bound, api = %format!("{}:{}", target.host, target.port), "API door open");
    let accept = tokio::spawn(accept_loop(listener, target.host, target.port));
    Ok((door, DoorGuard { accept }))
}

async fn accept_loop(listener: TcpListener, host: String, port: u16) {
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
        let host = host.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(inbound, &host, port).await {
                tracing::debug!(%peer, error = %e, "API door connection ended");
            }
        });
    }
}

async fn forward(mut inbound: TcpStream, host: &str, port: u16) -> std::io::Result<()> {
    let mut outbound = TcpStream::connect((host, port)).await?;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}
