-- A batch's open (unfinished) jobs are counted on its row, by the statements that change job
-- states (each says whether its jobs open or finish), so that the change finishing a batch's
-- last job knows it and nothing has to look for unfinished jobs as each one ends.
--
-- This replaces jobs_batch_open (0017): an index whose predicate reads `status` made every
-- job update a non-HOT one (a new entry in every index of `jobs`, see 0007), and the look
-- for an unfinished job walked the entries of the batch's finished ones.
DROP INDEX IF EXISTS jobs_batch_open;

ALTER TABLE batches ADD COLUMN open_jobs integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN batches.open_jobs IS 'Jobs of the batch not completed, dead or cancelled; the batch ends when it comes to 0.';

UPDATE batches b SET open_jobs = o.n
FROM (SELECT batch_id, count(*)::int AS n FROM jobs
      WHERE batch_id IS NOT NULL AND status NOT IN ('completed', 'dead', 'cancelled') GROUP BY batch_id) o
WHERE b.id = o.batch_id;
