-- Workload 1: the users' funnels, columns and leads as they know them, and lead migrations
-- (move every lead of an import run into a funnel column, in batches).

CREATE TABLE funnels (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE funnel_columns (
    id          bigserial   PRIMARY KEY,
    funnel_id   bigint      NOT NULL REFERENCES funnels (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    position    integer     NOT NULL DEFAULT 0
);
CREATE INDEX funnel_columns_funnel ON funnel_columns (funnel_id);

CREATE TABLE leads (
    id          bigserial   PRIMARY KEY,
    run_id      bigint      NOT NULL,
    funnel_id   bigint      REFERENCES funnels (id) ON DELETE SET NULL,
    column_id   bigint      REFERENCES funnel_columns (id) ON DELETE SET NULL,
    name        text,
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A migration reads a run's leads in id order and moves them by id range.
CREATE INDEX leads_run ON leads (run_id, id);

CREATE TABLE lead_migrations (
    id            uuid        PRIMARY KEY,
    run_id        bigint      NOT NULL,
    funnel_id     bigint      NOT NULL REFERENCES funnels (id),
    column_id     bigint      NOT NULL REFERENCES funnel_columns (id),
    batch_size    integer     NOT NULL CHECK (batch_size BETWEEN 1 AND 100000),
    state         text        NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    -- Leads of the run when it was planned, moved so far, and in batches that failed for good.
    total         integer,
    moved         integer     NOT NULL DEFAULT 0,
    failed        integer     NOT NULL DEFAULT 0,
    batches       integer,
    batches_done  integer     NOT NULL DEFAULT 0,
    -- The planning job; its events carry the migration's progress to SSE subscribers.
    job_id        uuid        REFERENCES jobs (id) ON DELETE SET NULL,
    owner_id      uuid        REFERENCES api_principals (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    cancelled_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_error    text
);
CREATE INDEX lead_migrations_created ON lead_migrations (created_at DESC, id DESC);
CREATE INDEX lead_migrations_owner ON lead_migrations (owner_id, created_at DESC);

-- One row per batch: the id range it covers and what became of it. A batch moves its leads
-- and records itself in one transaction, so running it twice moves and counts nothing twice.
CREATE TABLE lead_migration_batches (
    migration_id  uuid        NOT NULL REFERENCES lead_migrations (id) ON DELETE CASCADE,
    batch_no      integer     NOT NULL,
    first_id      bigint      NOT NULL,
    last_id       bigint      NOT NULL,
    leads         integer     NOT NULL,
    state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    moved         integer     NOT NULL DEFAULT 0,
    finished_at   timestamptz,
    last_error    text,
    PRIMARY KEY (migration_id, batch_no)
);
