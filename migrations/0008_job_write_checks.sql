-- Two checks ran for every row the job path writes, and cost more than the writes they
-- guarded (measured with perf on `make bench-jobs`: 6% of all CPU in the foreign-key
-- triggers, 1.7% in the kind's regular expression):
--
-- * job_events.job_id referenced jobs(id): every event row (three or more per job) ran the
--   foreign-key trigger, one query of its own per row (SELECT ... FOR KEY SHARE on the job).
--   Every statement that writes events writes them from the rows it has just inserted or
--   updated in `jobs` (INSERT/UPDATE ... RETURNING in the same statement), with the job row
--   locked, so an event cannot name a job that does not exist. The one thing the key did
--   besides was ON DELETE CASCADE: retention, the only code that deletes jobs, now deletes
--   the events of the jobs it deletes in the same statement.
-- * jobs.kind was checked with a regular expression, and a CHECK constraint runs on every
--   update of the row, not only when kind changes (three times per job). The same rule
--   (1 to 63 characters, a-z first, then a-z 0-9 _ . -) is now written with rtrim/ltrim,
--   about a third of the cost.

ALTER TABLE job_events DROP CONSTRAINT IF EXISTS job_events_job_id_fkey;
COMMENT ON COLUMN job_events.job_id IS
    'The job (not a foreign key, for write cost: events are written only together with the job row they describe; retention deletes them with the job).';

ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (
    octet_length(kind) BETWEEN 1 AND 63
    AND rtrim(kind, 'abcdefghijklmnopqrstuvwxyz0123456789_.-') = ''
    AND ltrim(left(kind, 1), 'abcdefghijklmnopqrstuvwxyz') = ''
);
