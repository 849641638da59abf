-- The SQLite twin of ../0008_runner_authority.sql (same columns; see there for why).

ALTER TABLE runner_tokens ADD COLUMN id TEXT;
UPDATE runner_tokens SET id = substr(token_hash, 1, 24);
CREATE UNIQUE INDEX runner_tokens_id ON runner_tokens (id);
ALTER TABLE runner_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE runner_tokens ADD COLUMN last_used_at INTEGER;

ALTER TABLE runners ADD COLUMN token_hash TEXT REFERENCES runner_tokens (token_hash);
ALTER TABLE runners ADD COLUMN secret_hash TEXT;
CREATE UNIQUE INDEX runners_secret ON runners (secret_hash);
