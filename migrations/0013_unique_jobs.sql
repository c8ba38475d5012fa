-- Unique while active: a kind may declare that a job equal on some payload fields (per owner)
-- is not enqueued again while one is active. unique_key is written with the job and never
-- changes, so its index keeps state changes HOT.
ALTER TABLE jobs ADD COLUMN unique_key text;
CREATE INDEX jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
