-- The change log's owner index serves only the campaigns feed (owner_id = $1 AND tabela =
-- 'campanhas'): the change rows of messages, two for every send, need no entry in it.
DROP INDEX messaging_changes_owner;
CREATE INDEX messaging_changes_owner ON messaging_changes (owner_id, id) WHERE tabela = 'campanhas';
