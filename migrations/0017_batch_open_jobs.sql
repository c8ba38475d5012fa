-- A batch's last job is found without counting the batch: settling first looks for any
-- unfinished job through this index (a batch of 100,000 jobs would otherwise be counted as
-- each of them ends).
CREATE INDEX jobs_batch_open ON jobs (batch_id) WHERE batch_id IS NOT NULL AND status NOT IN ('completed', 'dead', 'cancelled');
