-- Workload 2: exports of leads to an external system's table (`fichas`) over its REST API
-- (PostgREST upsert), day by day from the newest day to the oldest, with a sync event per lead.

-- Where exports go. Operator-configured (admins only); the API key is never returned.
CREATE TABLE export_targets (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    base_url      text        NOT NULL,
    api_key       text        NOT NULL,
    -- Eligible as the default target of a new export.
    active        boolean     NOT NULL DEFAULT true,
    -- Whether leads may be sent to it at all: false refuses new exports and pauses running ones.
    sync_enabled  boolean     NOT NULL DEFAULT true,
    -- Requests per second and burst, when the target has a published limit (else only its
    -- 429/503 answers slow exports down).
    rate_limit    double precision CHECK (rate_limit > 0 AND rate_limit <= 100000),
    rate_burst    integer     CHECK (rate_burst BETWEEN 1 AND 100000),
    direction     text        NOT NULL DEFAULT 'supabase_to_gestao_scouter',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE exports (
    id                   uuid        PRIMARY KEY,
    target_id            uuid        NOT NULL REFERENCES export_targets (id),
    status               text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    -- The newest day and the oldest (NULL: all history), UTC calendar days.
    start_date           date        NOT NULL,
    end_date             date        CHECK (end_date IS NULL OR end_date <= start_date),
    batch_size           integer     NOT NULL CHECK (batch_size BETWEEN 1 AND 10000),
    -- The day being exported, and the last one finished.
    processing_date      date,
    last_completed_date  date,
    total_leads          integer,
    exported_leads       integer     NOT NULL DEFAULT 0,
    error_leads          integer     NOT NULL DEFAULT 0,
    -- Where the next batch of processing_date begins: after this lead (created_at, id).
    cursor_at            timestamptz,
    cursor_id            bigint,
    pause_reason         text,
    paused_at            timestamptz,
    started_at           timestamptz,
    completed_at         timestamptz,
    cancelled_at         timestamptz,
    error                text,
    -- The principal's name, its id, and whose leads it sends (NULL: every lead, an admin's export).
    created_by           text        NOT NULL,
    owner_id             uuid        REFERENCES api_principals (id),
    leads_owner_id       uuid        REFERENCES api_principals (id),
    -- The job carrying the export now (NULL: none, e.g. paused once its batch was recorded).
    job_id               uuid,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- One active export per target.
CREATE UNIQUE INDEX exports_one_active ON exports (target_id) WHERE status IN ('pending', 'running', 'paused');
CREATE INDEX exports_created ON exports (created_at DESC, id DESC);
CREATE INDEX exports_owner ON exports (owner_id, created_at DESC, id DESC);

-- What became of each lead sent: written with the export's counters, in one transaction.
CREATE TABLE sync_events (
    id          bigserial   PRIMARY KEY,
    lead_id     bigint      NOT NULL,
    export_id   uuid        REFERENCES exports (id) ON DELETE SET NULL,
    target_id   uuid        NOT NULL REFERENCES export_targets (id) ON DELETE CASCADE,
    direction   text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('success', 'error')),
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_events_export ON sync_events (export_id, id);
-- "Leads never exported" to a target: an anti-join on this.
CREATE INDEX sync_events_target_success ON sync_events (target_id, lead_id) WHERE status = 'success';
CREATE INDEX sync_events_lead ON sync_events (lead_id, id);

-- Exports read a day's leads in (created_at, id) order, and find the next day with leads.
CREATE INDEX leads_created ON leads (created_at, id);
CREATE INDEX leads_owner_created ON leads (owner_id, created_at, id) WHERE owner_id IS NOT NULL;
-- "Never exported" pages a user's leads by id.
CREATE INDEX leads_owner_id ON leads (owner_id, id) WHERE owner_id IS NOT NULL;
