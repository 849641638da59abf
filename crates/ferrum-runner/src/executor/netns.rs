//! The Docker engine's network namespace, when the runner sits in another one.
//!
//! The isolated bridge, its gateway address and the host filter live where the engine is. A
//! runner in the same network namespace (the usual case: the daemon on the engine's host)
//! opens its door and installs the filter there directly. A runner in a namespace of its own
//! (in a container with the engine's socket mounted, or one simulated host among several on
//! one machine: `crates/ferrum/tests/many_hosts.rs`) names the engine's namespace with
//! `ferrum runner --engine-netns PATH`: the door's listening socket is made there (a socket
//! stays in the namespace it was made in) and the filter's iptables run there, while the
//! door's connections to the API leave from the runner's own namespace, the one its `--api`
//! URLs are reachable from.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::ExecError;

/// Runs `f` on a thread of its own that first moves into the network namespace at `path`
/// (e.g. `/proc/1/ns/net`, or `/run/netns/NAME`); other threads stay where they are.
pub(crate) fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ExecError> {
    let namespace = std::fs::File::open(path).map_err(|e| {
        ExecError::Sandbox(format!("engine network namespace {}: {e}", path.display()))
    })?;
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| ExecError::Sandbox(format!("entering network namespace {shown}: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| ExecError::Sandbox("the network namespace thread panicked".to_owned()))?
}
