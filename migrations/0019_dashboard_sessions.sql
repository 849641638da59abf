-- Issue 18: dashboard sessions are rows of their own, not API tokens: a session cookie is no
-- `Authorization` token, an API token is no cookie, and a session ends on the server at
-- logout or at `expires_at`, whichever comes first. Stored hashed like every token; starting
-- a session deletes the expired ones, so the table holds live sessions only.
CREATE TABLE dashboard_sessions (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
