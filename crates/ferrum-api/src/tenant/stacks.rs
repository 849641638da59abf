//! K1 `GET /2/stacks`: the stack names codes may ask for (contract §3.5).

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::Route;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    vec![Route::get(
        "/2/stacks",
        "The stack names a code's stack or runtime may name (a bare JSON array)",
        stacks,
    )]
}

async fn stacks(_: Caller, State(state): State<AppState>) -> Json<Vec<String>> {
    Json(state.config.stacks.names().map(str::to_owned).collect())
}
