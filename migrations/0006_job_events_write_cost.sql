-- Every job writes three or more events; each index on job_events costs every one of those
-- writes. Readers of events by kind or owner (the SSE feed) read a narrow range of ids
-- through the primary key and filter there, and a job's history uses job_events_job, so the
-- kind and owner indexes bought nothing and cost the hot path.
DROP INDEX IF EXISTS job_events_kind;
DROP INDEX IF EXISTS job_events_owner;
