-- Workload 4: messaging. Messages to a principal's contacts through a provider's HTTP API (one
-- provider instance per connected number), campaigns fanned out into one send per contact,
-- provider webhooks stored once and applied in the background, and a change log that feeds
-- live INSERT/UPDATE/DELETE streams.

-- A connected number at the provider. token and webhook_secret are secrets: never returned
-- by the api (the secret once, when the instance is made).
CREATE TABLE instancias (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL REFERENCES api_principals (id),
    nome            text        NOT NULL,
    base_url        text        NOT NULL,
    token           text        NOT NULL,
    webhook_secret  text        NOT NULL,
    -- Sends a second to this instance, and the burst (flow control: limiter provider:<id>).
    rate_limit      double precision NOT NULL DEFAULT 20 CHECK (rate_limit > 0 AND rate_limit <= 10000),
    burst           integer     NOT NULL DEFAULT 20 CHECK (burst BETWEEN 1 AND 100000),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instancias_owner ON instancias (owner_id, created_at DESC);

CREATE TABLE contatos (
    id          uuid        PRIMARY KEY,
    owner_id    uuid        NOT NULL REFERENCES api_principals (id),
    nome        text        NOT NULL,
    telefone    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, telefone)
);
CREATE INDEX contatos_owner ON contatos (owner_id, id);

CREATE TABLE campanhas (
    id           uuid        PRIMARY KEY,
    owner_id     uuid        NOT NULL REFERENCES api_principals (id),
    instance_id  uuid        NOT NULL REFERENCES instancias (id),
    nome         text        NOT NULL,
    mensagem     text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pendente'
                 CHECK (status IN ('pendente', 'enviando', 'concluida', 'concluida_com_falhas', 'cancelada', 'falha')),
    total        integer     NOT NULL DEFAULT 0,
    enviadas     integer     NOT NULL DEFAULT 0,
    falhas       integer     NOT NULL DEFAULT 0,
    canceladas   integer     NOT NULL DEFAULT 0,
    progresso    numeric(4,1) NOT NULL DEFAULT 0,
    batch_id     uuid,
    job_id       uuid,
    erro         text,
    -- Set when the campaign is cancelled: sends not made yet are not made.
    cancelada_em timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campanhas_owner ON campanhas (owner_id, created_at DESC);

CREATE TABLE mensagens (
    id                   uuid        PRIMARY KEY,
    owner_id             uuid        NOT NULL REFERENCES api_principals (id),
    contato_id           uuid        NOT NULL REFERENCES contatos (id) ON DELETE CASCADE,
    instance_id          uuid        REFERENCES instancias (id) ON DELETE SET NULL,
    campanha_id          uuid        REFERENCES campanhas (id) ON DELETE SET NULL,
    -- The envio_mensagem job that sends it: a redelivered job finds its message here.
    job_id               uuid        UNIQUE,
    direcao              text        NOT NULL CHECK (direcao IN ('saida', 'entrada')),
    conteudo             text        NOT NULL,
    status               text        NOT NULL DEFAULT 'pendente'
                         CHECK (status IN ('pendente', 'enviada', 'entregue', 'lida', 'falha', 'cancelada', 'recebida')),
    provider_message_id  text,
    erro                 text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    enviada_em           timestamptz,
    entregue_em          timestamptz,
    lida_em              timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mensagens_contato ON mensagens (contato_id, created_at);
CREATE INDEX mensagens_campanha ON mensagens (campanha_id, status) WHERE campanha_id IS NOT NULL;
CREATE UNIQUE INDEX mensagens_provider ON mensagens (instance_id, provider_message_id) WHERE provider_message_id IS NOT NULL;

-- Each provider webhook, stored once (the provider's event id), then applied by a
-- processamento_webhook job. Kept 30 days: a provider's retries come within minutes.
CREATE TABLE webhook_eventos (
    id            uuid        PRIMARY KEY,
    instance_id   uuid        NOT NULL REFERENCES instancias (id) ON DELETE CASCADE,
    owner_id      uuid        NOT NULL REFERENCES api_principals (id),
    event_id      text        NOT NULL,
    tipo          text        NOT NULL,
    payload       jsonb       NOT NULL,
    job_id        uuid,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    UNIQUE (instance_id, event_id)
);
CREATE INDEX webhook_eventos_received ON webhook_eventos (received_at);

-- Every INSERT, UPDATE and DELETE of mensagens and campanhas, written by the triggers below
-- in the changing transaction: the live feeds read it from an id on (Last-Event-ID), so a
-- client that reconnects, to any api, gets exactly what it missed. Kept 7 days.
CREATE TABLE messaging_changes (
    id          bigserial   PRIMARY KEY,
    owner_id    uuid        NOT NULL,
    tabela      text        NOT NULL CHECK (tabela IN ('mensagens', 'campanhas')),
    contato_id  uuid,
    op          text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    row_data    jsonb       NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messaging_changes_contato ON messaging_changes (contato_id, id) WHERE contato_id IS NOT NULL;
CREATE INDEX messaging_changes_owner ON messaging_changes (owner_id, tabela, id);
CREATE INDEX messaging_changes_at ON messaging_changes (at);

-- Statement-level, with transition tables: a campaign's fan-out of 100,000 messages is one
-- INSERT here, not 100,000. No NOTIFY: PostgreSQL serializes the commits of notifying
-- transactions (a lock held through the commit's flush), which would cap sends at the disk's
-- flush rate; the apis' feeds look for new rows every 20 ms instead.
CREATE FUNCTION messaging_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
        SELECT r.owner_id, TG_TABLE_NAME, CASE WHEN TG_TABLE_NAME = 'mensagens' THEN (to_jsonb(r) ->> 'contato_id')::uuid END,
               TG_OP, to_jsonb(r)
        FROM old_rows r;
    ELSE
        INSERT INTO messaging_changes (owner_id, tabela, contato_id, op, row_data)
        SELECT r.owner_id, TG_TABLE_NAME, CASE WHEN TG_TABLE_NAME = 'mensagens' THEN (to_jsonb(r) ->> 'contato_id')::uuid END,
               TG_OP, to_jsonb(r)
        FROM new_rows r;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mensagens_inserted AFTER INSERT ON mensagens REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();
CREATE TRIGGER mensagens_updated AFTER UPDATE ON mensagens REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();
CREATE TRIGGER mensagens_deleted AFTER DELETE ON mensagens REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();
CREATE TRIGGER campanhas_inserted AFTER INSERT ON campanhas REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();
CREATE TRIGGER campanhas_updated AFTER UPDATE ON campanhas REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();
CREATE TRIGGER campanhas_deleted AFTER DELETE ON campanhas REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_record_changes();

