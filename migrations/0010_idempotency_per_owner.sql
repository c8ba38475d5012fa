-- Idempotency keys belong to their owner: (owner, kind, key) is unique, so one owner's key
-- neither finds nor blocks another's job. Jobs without an owner (NULL) share one namespace:
-- NULLS NOT DISTINCT makes NULL owners equal for this index (PostgreSQL 15).
DROP INDEX jobs_kind_idempotency_key;
-- Kind and key lead, so the look-up of a known key (with its owner) uses the index.
CREATE UNIQUE INDEX jobs_kind_idempotency_key_owner ON jobs (kind, idempotency_key, owner_id) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;
