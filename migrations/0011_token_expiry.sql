-- Tokens may expire: a principal whose expires_at has passed authenticates no more.
ALTER TABLE api_principals ADD COLUMN expires_at timestamptz;
