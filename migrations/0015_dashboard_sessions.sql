-- Web dashboard sign-ins: a browser pastes a token once and holds a session cookie after.
-- Only the cookie's SHA-256 is kept; the CSRF token is echoed in every form the session
-- posts. A revoked or expired principal ends its sessions at once (each request joins
-- api_principals); expired rows are deleted at the next sign-in.
CREATE TABLE dashboard_sessions (
    id_hash       bytea       PRIMARY KEY,
    principal_id  uuid        NOT NULL REFERENCES api_principals (id) ON DELETE CASCADE,
    csrf_token    text        NOT NULL CHECK (length(csrf_token) = 64),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
