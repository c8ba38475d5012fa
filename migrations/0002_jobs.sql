-- The job record: every job's state, attempts, errors and progress, its history of state
-- changes, the dead letters, and every requeue of dead letters.

CREATE TABLE jobs (
    id                uuid        PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    status            text        NOT NULL CHECK (status IN
                          ('scheduled', 'queued', 'running', 'retrying', 'completed', 'dead', 'cancelled')),
    payload           jsonb       NOT NULL,
    idempotency_key   text        CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    priority          smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer     NOT NULL CHECK (max_attempts >= 1),
    run_after         timestamptz,
    owner_id          uuid        REFERENCES api_principals (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Set when the broker confirmed the message; NULL rows are the outbox the relay publishes.
    published_at      timestamptz,
    -- When the current (or last) attempt started, and when the job reached a final state.
    started_at        timestamptz,
    first_started_at  timestamptz,
    finished_at       timestamptz,
    -- Who runs it now, and when it last said so (stuck-job rescue reads these).
    worker            text,
    heartbeat_at      timestamptz,
    last_error        text,
    last_error_class  text        CHECK (last_error_class IN ('transient', 'permanent', 'timeout', 'poison', 'cancelled')),
    progress          jsonb,
    result            jsonb
);

-- Same (kind, key) returns the same job.
CREATE UNIQUE INDEX jobs_kind_idempotency_key ON jobs (kind, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The outbox relay: rows not yet published, due now or later.
CREATE INDEX jobs_unpublished ON jobs (run_after NULLS FIRST, created_at)
    WHERE published_at IS NULL AND status IN ('queued', 'scheduled');
-- Listing: newest first, by owner, by kind and status (cursor = created_at, id).
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_owner_created ON jobs (owner_id, created_at DESC, id DESC);
CREATE INDEX jobs_kind_status_created ON jobs (kind, status, created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
-- Stuck-job rescue: running jobs by heartbeat.
CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE status = 'running';

COMMENT ON TABLE jobs IS 'One row per job: the record of its state. The broker carries only its id.';

-- Every state change, in order: the history shown by GET /v1/jobs/{id} and streamed as
-- Server-Sent Events (the id is the SSE event id, so a client resumes with Last-Event-ID).
CREATE TABLE job_events (
    id          bigserial   PRIMARY KEY,
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind        text        NOT NULL,
    owner_id    uuid,
    status      text        NOT NULL,
    attempt     integer     NOT NULL DEFAULT 0,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb
);
CREATE INDEX job_events_job ON job_events (job_id, id);
CREATE INDEX job_events_kind ON job_events (kind, id);
CREATE INDEX job_events_owner ON job_events (owner_id, id);

-- Dead letters: jobs that will not run again unless requeued, and poison messages (no job
-- row: undecodable or of an unknown kind) with the raw message kept for inspection.
CREATE TABLE dead_letters (
    id            bigserial   PRIMARY KEY,
    job_id        uuid        UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    kind          text,
    owner_id      uuid,
    reason        text        NOT NULL,
    error_class   text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    dead_at       timestamptz NOT NULL DEFAULT now(),
    raw_message   bytea,
    requeued_at   timestamptz,
    requeue_id    bigint
);
CREATE INDEX dead_letters_open ON dead_letters (kind, dead_at DESC, id DESC) WHERE requeued_at IS NULL;
CREATE INDEX dead_letters_owner_open ON dead_letters (owner_id, dead_at DESC, id DESC) WHERE requeued_at IS NULL;

-- Every requeue of dead letters: who asked, when, with what selection, and how many moved.
CREATE TABLE requeues (
    id            bigserial   PRIMARY KEY,
    requested_by  uuid        REFERENCES api_principals (id),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    selection     jsonb       NOT NULL,
    job_count     integer     NOT NULL,
    job_ids       uuid[]      NOT NULL
);

ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_requeue FOREIGN KEY (requeue_id) REFERENCES requeues (id);
