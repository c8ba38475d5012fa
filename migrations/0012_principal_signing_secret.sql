-- Every principal has a signing secret of its own: requests of its http jobs to URLs they
-- chose are signed with it (never with an operator's secret), and it is shown to the
-- principal alone (GET /v1/whoami). gen_random_uuid() is cryptographically random; two make
-- 244 random bits.
ALTER TABLE api_principals ADD COLUMN signing_secret text NOT NULL
    DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
