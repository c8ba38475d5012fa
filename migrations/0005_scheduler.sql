-- The scheduler: cron schedules, the per-kind per-minute metrics roll-up, and the indexes
-- its retention and roll-up passes read.

-- A cron schedule: each tick enqueues one job of `kind` with `payload`; the tick's time is
-- the job's idempotency key, so a tick enqueues exactly one job whoever leads.
CREATE TABLE schedules (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    cron          text        NOT NULL CHECK (length(cron) BETWEEN 1 AND 200),
    time_zone     text        NOT NULL DEFAULT 'UTC',
    kind          text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    payload       jsonb       NOT NULL DEFAULT '{}',
    enabled       boolean     NOT NULL DEFAULT true,
    owner_id      uuid        REFERENCES api_principals (id),
    -- The next tick to enqueue (NULL while disabled), the last one enqueued and its job.
    next_run_at   timestamptz,
    last_run_at   timestamptz,
    last_job_id   uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Names are unique per owner (NULL owner: the system's schedules).
CREATE UNIQUE INDEX schedules_owner_name ON schedules (coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
-- The leader's tick query: enabled schedules by next tick.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;

-- Per kind per minute: counts of job events and wait/run time percentiles (seconds).
CREATE TABLE queue_metrics (
    kind        text        NOT NULL,
    minute      timestamptz NOT NULL,
    enqueued    integer     NOT NULL DEFAULT 0,
    started     integer     NOT NULL DEFAULT 0,
    completed   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    retried     integer     NOT NULL DEFAULT 0,
    dead        integer     NOT NULL DEFAULT 0,
    wait_p50    double precision,
    wait_p95    double precision,
    wait_p99    double precision,
    run_p50     double precision,
    run_p95     double precision,
    run_p99     double precision,
    rolled_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, minute)
);
CREATE INDEX queue_metrics_minute ON queue_metrics (minute);

-- Small named values the scheduler keeps between runs (the last minute rolled up).
CREATE TABLE scheduler_state (
    name        text        PRIMARY KEY,
    at          timestamptz NOT NULL
);

-- Retention: finished jobs by kind and age.
CREATE INDEX jobs_finished ON jobs (kind, finished_at) WHERE status IN ('completed', 'dead', 'cancelled');
-- The roll-up reads a minute of events at a time; event times follow insertion order, so a
-- BRIN index finds them at almost no cost to the writes.
CREATE INDEX job_events_at ON job_events USING brin (at);
CREATE INDEX lead_migrations_job ON lead_migrations (job_id);
