-- Who may call the api. Tokens are never stored, only their SHA-256 (sha256() is built in
-- since PostgreSQL 11), so a leaked table does not leak credentials.
CREATE TABLE api_principals (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    role        text        NOT NULL CHECK (role IN ('admin', 'user')),
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  uuid        REFERENCES api_principals (id),
    revoked_at  timestamptz
);

COMMENT ON TABLE api_principals IS 'API callers: bearer-token principals with a role (admin sees and controls everything, user only what it created).';
