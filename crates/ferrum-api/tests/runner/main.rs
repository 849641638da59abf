//! The runner trust model over HTTP, with the attack as the test: runners of another cluster,
//! and other runners of the same cluster, try every runner route on a lease they do not hold;
//! revoked tokens lose their authority. Each test starts the router on 127.0.0.1:0 over a fresh
//! Postgres database.

#[allow(dead_code)]
#[path = "../tenant/common.rs"]
mod common;

mod authority;
mod fleet;
mod support;
mod sweep;
