-- A campaign is fanned out in chunks, each in a transaction of its own, so its first sends
-- start while the rest are written. `enfileiradas` counts the messages queued so far: each
-- chunk advances it in its own transaction from the count its writer read, so two deliveries
-- of the campaign's job cannot both write a chunk, and a redelivered job goes on from the
-- contacts that have no message yet. `enfileirada_em` is set once the last chunk is written.
ALTER TABLE campanhas ADD COLUMN enfileiradas integer NOT NULL DEFAULT 0, ADD COLUMN enfileirada_em timestamptz;
-- Campaigns fanned out before were written in one transaction.
UPDATE campanhas SET enfileiradas = total, enfileirada_em = started_at WHERE batch_id IS NOT NULL;
