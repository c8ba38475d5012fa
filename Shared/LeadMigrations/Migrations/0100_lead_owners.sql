-- Lead-migration data has owners. Funnels (and so their columns) and leads belong to a
-- principal, written by the CRM (NULL: admins' alone). A user's migration may target only a
-- funnel of theirs and moves only their leads of the run; an admin's moves the whole run.
ALTER TABLE funnels ADD COLUMN owner_id uuid REFERENCES api_principals (id);
ALTER TABLE leads ADD COLUMN owner_id uuid REFERENCES api_principals (id);
-- Whose leads a migration moves: NULL, every lead of the run (an admin's migration).
ALTER TABLE lead_migrations ADD COLUMN leads_owner_id uuid REFERENCES api_principals (id);
CREATE INDEX leads_owner_run ON leads (owner_id, run_id, id) WHERE owner_id IS NOT NULL;
CREATE INDEX funnels_owner ON funnels (owner_id) WHERE owner_id IS NOT NULL;
