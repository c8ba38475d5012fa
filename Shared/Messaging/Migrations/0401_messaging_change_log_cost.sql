-- What each message's change costs, written with every send: the change rows of mensagens
-- take the contact from the row itself instead of converting the row to jsonb a second time,
-- and the change log's retention index is a BRIN (rows are appended in time order, so a few
-- pages of summaries serve the retention's range scan) instead of a B-tree entry per change.
CREATE OR REPLACE FUNCTION messaging_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL plans each statement for the trigger's own table, on first use: the mensagens
    -- branches never run (nor plan) for campanhas, whose rows have no contato_id.
    IF TG_TABLE_NAME = 'mensagens' THEN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
            SELECT r.owner_id, 'mensagens', r.contato_id, TG_OP, to_jsonb(r) FROM old_rows r;
        ELSE
            INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
            SELECT r.owner_id, 'mensagens', r.contato_id, TG_OP, to_jsonb(r) FROM new_rows r;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
        SELECT r.owner_id, TG_TABLE_NAME, NULL, TG_OP, to_jsonb(r) FROM old_rows r;
    ELSE
        INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
        SELECT r.owner_id, TG_TABLE_NAME, NULL, TG_OP, to_jsonb(r) FROM new_rows r;
    END IF;
    RETURN NULL;
END $$;

DROP INDEX messaging_changes_at;
CREATE INDEX messaging_changes_at ON messaging_changes USING brin (at);
