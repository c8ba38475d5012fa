-- A job's row changed three times after its insert (published, claimed, finished). Each
-- change that touches an indexed column writes a new entry into every index of `jobs`;
-- one that touches none is a HOT update: a new row version on the same page and no index
-- write at all. So `jobs` keeps only indexes on columns that never change after the insert
-- (id, kind, owner, created_at, idempotency key), and the two questions that needed
-- indexes on changing columns get small tables of their own:
--
-- * which jobs are not published yet (was the partial index jobs_unpublished on
--   published_at and status): job_outbox, a row per unpublished job, written with the job
--   and deleted when the broker confirmed its message (the job row is then left alone: a
--   job with no outbox row counts as published, so the publish costs `jobs` nothing);
-- * which running jobs stopped sending heartbeats (was jobs_running_heartbeat on
--   heartbeat_at where status = 'running'): job_leases, a row per running attempt, written
--   by the claim, refreshed by heartbeats and deleted when the attempt ends; the job row's
--   own worker and heartbeat_at columns go.
--
-- Listing by status now reads the created_at indexes and filters (the status lists were
-- the other two indexes on a changing column), and retention finds old jobs by created_at
-- (a job finishes after it is created). Free space is left on each page (fillfactor 35: with
-- 60, a quarter of the updates still found no room on the page and were not HOT; with 35,
-- 97% are HOT, for about 400 bytes of table per job) so the
-- later versions of a row fit beside it.

CREATE TABLE job_outbox (
    job_id      uuid        PRIMARY KEY,
    -- When the job may be published: its run_after for a delayed job, else its enqueue time.
    due_at      timestamptz NOT NULL,
    -- True when no enqueuer publishes the job itself (a delayed job, a rescued one): the relay
    -- takes it as soon as it is due. Otherwise the relay waits a grace period first, since
    -- the enqueuer is publishing it at that moment.
    relay_only  boolean     NOT NULL DEFAULT false
);
CREATE INDEX job_outbox_due ON job_outbox (relay_only, due_at);
COMMENT ON TABLE job_outbox IS 'Jobs whose message the broker has not confirmed yet; the outbox relay publishes the due ones.';

INSERT INTO job_outbox (job_id, due_at, relay_only)
SELECT id, coalesce(run_after, created_at), status = 'scheduled' FROM jobs
WHERE published_at IS NULL AND status IN ('queued', 'scheduled');

CREATE TABLE job_leases (
    job_id        uuid        PRIMARY KEY,
    attempt       integer     NOT NULL,
    worker        text        NOT NULL,
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE job_leases IS 'Running attempts and their last heartbeat; the stuck-job rescue reads it.';

INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at)
SELECT id, attempts, coalesce(worker, ''), coalesce(heartbeat_at, now()) FROM jobs WHERE status = 'running';

-- The lease is now where a running attempt's processor and heartbeat are kept; the copies
-- on the job row would only be written and never read.
ALTER TABLE jobs DROP COLUMN worker, DROP COLUMN heartbeat_at;

DROP INDEX IF EXISTS jobs_unpublished;
DROP INDEX IF EXISTS jobs_running_heartbeat;
DROP INDEX IF EXISTS jobs_kind_status_created;
DROP INDEX IF EXISTS jobs_status_created;
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX jobs_kind_created ON jobs (kind, created_at DESC, id DESC);

ALTER TABLE jobs SET (fillfactor = 35);
