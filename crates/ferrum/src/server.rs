//! Startup shared by `ferrum serve` (Postgres, production) and `ferrum dev` (SQLite, one
//! process): bootstrap the admin token, open the object store, build the app state, start the
//! background duties, and serve HTTP until a shutdown future resolves.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use ferrum_api::duties::Duties;
use ferrum_api::{ApiConfig, AppState};
use ferrum_store::Store;

/// Makes `admin_token` the admin's token, opens the object store at `blob_url`, and starts the
/// background duties on the current runtime ([`serve`] stops them). Queue wakeups within this
/// process go through the returned state's `queue`; a backend shared by several processes
/// must forward its own.
pub async fn start(
    store: Arc<dyn Store>,
    admin_token: &str,
    blob_url: &str,
    config: ApiConfig,
) -> anyhow::Result<(AppState, Duties)> {
    store.bootstrap_admin(admin_token).await?;
    let blobs = ferrum_blob::open(blob_url)
        .await
        .with_context(|| format!("opening blob store {blob_url}"))?;
    let state = AppState {
        store,
        blobs,
        config: Arc::new(config),
        queue: Default::default(),
    };
    let duties = ferrum_api::duties::spawn(state.clone());
    Ok((state, duties))
}

/// Accepts a runner token for the `default` cluster (idempotent, also when several replicas
/// start at once with the same token: the one that loses the insert finds the winner's).
pub async fn accept_runner_token(store: &dyn Store, token: &str) -> anyhow::Result<()> {
    if store.authenticate_runner(token).await?.is_some() {
        return Ok(());
    }
    match store.add_runner_token("default", token).await {
        Ok(_) => Ok(()),
        Err(_) if store.authenticate_runner(token).await?.is_some() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Binds the API's listening socket, with an error that names the address.
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests and
/// stops the duties.
pub async fn serve(
    (state, duties): (AppState, Duties),
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "ferrum API listening");
    let served = axum::serve(listener, ferrum_api::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    duties.stop().await;
    served?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
