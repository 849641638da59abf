//! Dashboard sessions: hashed rows of their own with an end, never API tokens.

use chrono::{Duration, Utc};

use super::world::{world, Backend};

pub async fn sessions_end_at_logout_or_expiry_and_are_not_api_tokens(backend: Backend) {
    let w = world(backend).await;
    let s = &w.store;
    let user = s.create_user("u@example.com", false).await.unwrap();
    s.add_user_token(user, "api-token").await.unwrap();
    let later = Utc::now() + Duration::hours(1);
    s.start_session(user, "session-token", later).await.unwrap();

    let who = s.session("session-token").await.unwrap().unwrap();
    assert_eq!(who.user_id, user);
    assert!(!who.is_admin);
    assert!(s.authenticate("session-token").await.unwrap().is_none());
    assert!(s.session("api-token").await.unwrap().is_none());

    // An expired session is refused, and the next login deletes its row.
    let past = Utc::now() - Duration::seconds(1);
    s.start_session(user, "stale", past).await.unwrap();
    assert!(s.session("stale").await.unwrap().is_none());
    s.start_session(user, "fresh", later).await.unwrap();
    assert!(
        !s.end_session("stale").await.unwrap(),
        "deleted at the next login"
    );

    assert!(s.end_session("session-token").await.unwrap());
    assert!(s.session("session-token").await.unwrap().is_none());
    assert!(!s.end_session("session-token").await.unwrap());
    assert!(
        s.session("fresh").await.unwrap().is_some(),
        "other sessions live on"
    );
}
