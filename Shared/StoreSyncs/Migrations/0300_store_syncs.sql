-- Workload 3: store syncs. A store's Shopify and Klaviyo data for a period, fetched by the
-- syncer and kept in store_sync_cache; identical requests while one is queued or running join it.

-- A principal's stores, with their API credentials (secrets: never returned by the api).
CREATE TABLE stores (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL REFERENCES api_principals (id),
    name            text        NOT NULL,
    shopify_domain  text,
    shopify_token   text,
    klaviyo_key     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((shopify_domain IS NULL) = (shopify_token IS NULL))
);
CREATE INDEX stores_owner ON stores (owner_id, created_at DESC);

CREATE TABLE store_syncs (
    id            uuid        PRIMARY KEY,
    store_id      uuid        NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
    owner_id      uuid        REFERENCES api_principals (id),
    period_start  date        NOT NULL,
    period_end    date        NOT NULL CHECK (period_end >= period_start),
    -- Sorted, distinct: shopify.orders, shopify.customers, shopify.products, klaviyo.profiles, ...
    data_types    text[]      NOT NULL,
    status        text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    priority      integer     NOT NULL DEFAULT 0,
    force         boolean     NOT NULL DEFAULT false,
    -- Requests that joined this sync instead of adding another.
    joined        integer     NOT NULL DEFAULT 0,
    pages         integer     NOT NULL DEFAULT 0,
    job_id        uuid,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
-- One queued or running sync per store, period and data types: the next identical request joins it.
CREATE UNIQUE INDEX store_syncs_active ON store_syncs (store_id, period_start, period_end, data_types)
    WHERE status IN ('queued', 'running');
CREATE INDEX store_syncs_store ON store_syncs (store_id, created_at DESC);
CREATE INDEX store_syncs_owner ON store_syncs (owner_id, created_at DESC);

-- Each page fetched, kept until the sync completes: a retry resumes after the last one.
CREATE TABLE store_sync_pages (
    sync_id      uuid        NOT NULL REFERENCES store_syncs (id) ON DELETE CASCADE,
    data_type    text        NOT NULL,
    page_no      integer     NOT NULL,
    -- Where the page after it is (a URL); NULL: it was the last.
    next_url     text,
    items        jsonb       NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sync_id, data_type, page_no)
);

-- The team's cache, by store, data type and period.
CREATE TABLE store_sync_cache (
    store_id      uuid        NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
    data_type     text        NOT NULL,
    period_start  date        NOT NULL,
    period_end    date        NOT NULL,
    source        text        NOT NULL,
    synced_at     timestamptz NOT NULL,
    data          jsonb       NOT NULL,
    PRIMARY KEY (store_id, data_type, period_start, period_end)
);
