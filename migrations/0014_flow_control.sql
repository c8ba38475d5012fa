-- Flow control: global and per-key concurrency, and paused kinds.
--
-- A running attempt of a kind with a concurrency limit holds a slot: its lease row names the
-- kind (slot_kind) and, for a per-key limit, the key's value (slot_key). The claim counts
-- these rows under a transaction-scoped advisory lock on the kind. Other kinds leave both
-- columns NULL, so the partial index costs their claims nothing.
ALTER TABLE job_leases ADD COLUMN slot_kind text, ADD COLUMN slot_key text;
CREATE INDEX job_leases_slot ON job_leases (slot_kind, slot_key) WHERE slot_kind IS NOT NULL;

-- A delivery over its kind's limit is parked: the job goes back to 'scheduled' with a relay-only
-- outbox row that says which slot it waits for. A finishing attempt wakes the oldest waiter of
-- its slot; the row's due_at is the fallback when no wake comes (the relay then publishes it).
ALTER TABLE job_outbox ADD COLUMN waiting_kind text, ADD COLUMN waiting_key text;
CREATE INDEX job_outbox_waiting ON job_outbox (waiting_kind, waiting_key, due_at) WHERE waiting_kind IS NOT NULL;

-- Kinds an admin paused: no processor takes their deliveries until they are resumed.
CREATE TABLE paused_kinds (
    kind       text        PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    paused_at  timestamptz NOT NULL DEFAULT now(),
    paused_by  text        NOT NULL,
    reason     text        CHECK (length(reason) <= 500)
);
COMMENT ON TABLE paused_kinds IS 'Kinds whose deliveries no processor takes; a row per paused kind.';

-- Named rate limiters shared by every processor: a token bucket kept as its theoretical
-- arrival time (GCRA): each job reserves the next 1/rate seconds; a reservation more than
-- the burst ahead of now makes the job wait until its time (its ticket). paused_until is set
-- when the service behind the limiter answered 429 or 503 with Retry-After.
CREATE TABLE rate_limiters (
    name          text        PRIMARY KEY,
    tat           timestamptz NOT NULL DEFAULT now(),
    paused_until  timestamptz,
    pauses        bigint      NOT NULL DEFAULT 0
);
COMMENT ON TABLE rate_limiters IS 'Shared token buckets (GCRA) for external services, and their Retry-After pauses.';
-- A job that reserved a later slot of a limiter runs at this time without reserving again.
ALTER TABLE jobs ADD COLUMN limiter_ticket timestamptz;

-- Circuit breakers per external service, shared by every processor: closed until `threshold`
-- failures fall within the window, then open (jobs that need the service wait, spending no
-- attempt) until the cool-down ends, then half-open: one job probes the service; its success
-- closes the breaker, its failure opens it again.
CREATE TABLE circuit_breakers (
    name               text        PRIMARY KEY,
    state              text        NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    failures           integer     NOT NULL DEFAULT 0,
    window_started_at  timestamptz,
    opened_at          timestamptz,
    probe_job          uuid,
    probe_started_at   timestamptz,
    last_error         text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE circuit_breakers IS 'Circuit breakers for external services, one row each, shared by every processor.';

CREATE TABLE circuit_breaker_events (
    id      bigserial   PRIMARY KEY,
    name    text        NOT NULL,
    state   text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    detail  jsonb
);
CREATE INDEX circuit_breaker_events_name ON circuit_breaker_events (name, id DESC);
COMMENT ON TABLE circuit_breaker_events IS 'Every change of a circuit breaker''s state, newest last.';

-- Batches: jobs made together (through the api or by a handler fanning out), with progress
-- and callbacks enqueued once when every job has finished.
CREATE TABLE batches (
    id                uuid        PRIMARY KEY,
    owner_id          uuid        REFERENCES api_principals (id),
    description       text        CHECK (length(description) <= 500),
    on_success        jsonb,
    on_complete       jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    cancelled_at      timestamptz,
    finished_at       timestamptz,
    -- The callback jobs, once enqueued (in the transaction that set finished_at).
    success_job_id    uuid,
    complete_job_id   uuid
);
CREATE INDEX batches_owner_created ON batches (owner_id, created_at DESC);
CREATE INDEX batches_created ON batches (created_at DESC);
CREATE INDEX batches_open ON batches (created_at) WHERE finished_at IS NULL;
COMMENT ON TABLE batches IS 'Groups of jobs with progress and success/complete callbacks.';

CREATE TABLE batch_events (
    id        bigserial   PRIMARY KEY,
    batch_id  uuid        NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    event     text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    detail    jsonb
);
CREATE INDEX batch_events_batch ON batch_events (batch_id, id);

-- Written with the job and never changed, so state changes stay HOT.
ALTER TABLE jobs ADD COLUMN batch_id uuid;
CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL;
