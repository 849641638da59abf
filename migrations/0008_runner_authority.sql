-- Runner authority (docs/ARCHITECTURE.md, "The runner trust model").
--
-- A runner token may only register runners of its cluster. Registering gives the runner a
-- credential of its own (stored hashed in `runners.secret_hash`), bound to the token it
-- registered with: every later call is the runner's, and revoking the token
-- (`runner_tokens.revoked_at`) takes the authority of every runner it registered.
-- Runner tokens get an id, so admins can list and revoke them without ever seeing one again.

ALTER TABLE runner_tokens ADD COLUMN id text;
-- Tokens made before this migration: an id derived from the hash (24 hex digits, like any id).
UPDATE runner_tokens SET id = substr(token_hash, 1, 24);
ALTER TABLE runner_tokens ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX runner_tokens_id ON runner_tokens (id);
ALTER TABLE runner_tokens ADD COLUMN revoked_at timestamptz;
-- When a runner last registered with the token.
ALTER TABLE runner_tokens ADD COLUMN last_used_at timestamptz;

-- Runners registered before this migration have neither and so no authority: they register
-- again when they restart.
ALTER TABLE runners ADD COLUMN token_hash text REFERENCES runner_tokens (token_hash);
ALTER TABLE runners ADD COLUMN secret_hash text;
CREATE UNIQUE INDEX runners_secret ON runners (secret_hash);
