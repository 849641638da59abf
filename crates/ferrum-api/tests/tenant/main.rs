//! Integration tests of the tenant API: each test starts the router on 127.0.0.1:0 over a
//! fresh Postgres database and a blob directory of its own.

mod accounts;
mod bad_input;
mod batches;
mod bounds;
mod common;
mod dashboard;
mod duties;
mod isolation;
mod limits;
mod python_client;
mod quotas;
mod registry;
mod shapes;
mod sweep;
mod webhooks;
