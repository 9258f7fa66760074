-- Authorization that is current (issue 23): an account an admin disabled signs in no more, and
-- every session it has ends; the session check every authenticated request makes reads the
-- account's roles and state from here, not from the access token.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;

-- The sessions of one user, for revoking them all (log out everywhere, an admin's revoke).
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
