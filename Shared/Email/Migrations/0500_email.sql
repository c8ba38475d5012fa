-- Workload 5: email support. Stores' mailboxes read over IMAP by the ingestor (each message
-- stored once, by its Message-ID per store, with its processing job in the same
-- transaction), each message answered over SMTP by the email.process kind, and the store's
-- credits debited once per reply sent.

-- A principal's store: its mail servers and shop API. imap_password, smtp_password and
-- shop_token are secrets: never returned by the api.
CREATE TABLE email_stores (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL REFERENCES api_principals (id),
    name            text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    imap_host       text        NOT NULL,
    imap_port       integer     NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
    imap_security   text        NOT NULL CHECK (imap_security IN ('none', 'starttls_if_offered', 'starttls', 'tls')),
    imap_user       text        NOT NULL,
    imap_password   text        NOT NULL,
    imap_mailbox    text        NOT NULL DEFAULT 'INBOX',
    smtp_host       text        NOT NULL,
    smtp_port       integer     NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security   text        NOT NULL CHECK (smtp_security IN ('none', 'starttls_if_offered', 'starttls', 'tls')),
    smtp_user       text,
    smtp_password   text,
    from_address    text        NOT NULL,
    shop_domain     text,
    shop_token      text,
    -- Replies the store may still send; each reply sent takes one.
    credits         bigint      NOT NULL DEFAULT 0 CHECK (credits >= 0),
    credits_used    bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The mailbox as the ingestor last left it: its UIDVALIDITY and the last UID stored.
    uid_validity    bigint,
    last_uid        bigint      NOT NULL DEFAULT 0,
    -- Which ingestor reads the mailbox now, until when (a lease renewed each round).
    leased_by       text,
    leased_until    timestamptz,
    -- The last round: when it ended, what it stored, how it failed.
    last_round_at   timestamptz,
    last_round_messages integer NOT NULL DEFAULT 0,
    last_error      text,
    messages_total  bigint      NOT NULL DEFAULT 0,
    errors_total    bigint      NOT NULL DEFAULT 0,
    CHECK ((shop_domain IS NULL) = (shop_token IS NULL)),
    CHECK ((smtp_user IS NULL) = (smtp_password IS NULL))
);
CREATE INDEX email_stores_owner ON email_stores (owner_id, created_at DESC);
-- The rounds' question: which active stores are due (not leased by another ingestor).
CREATE INDEX email_stores_due ON email_stores (last_round_at NULLS FIRST) WHERE active;

-- Each message once per store (by Message-ID), its raw text kept, and what became of it.
CREATE TABLE email_messages (
    id                uuid        PRIMARY KEY,
    store_id          uuid        NOT NULL REFERENCES email_stores (id) ON DELETE CASCADE,
    owner_id          uuid        NOT NULL REFERENCES api_principals (id),
    message_id        text        NOT NULL,
    -- The thread's root Message-ID: one conversation is processed by one worker at a time.
    conversation_id   text        NOT NULL,
    uid_validity      bigint,
    uid               bigint,
    from_address      text,
    subject           text,
    raw               bytea       NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    status            text        NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'sending', 'replied', 'unconfirmed', 'spam', 'invalid', 'skipped', 'no_credits', 'failed')),
    class             text,
    order_number      text,
    spam_score        double precision,
    reason            text,
    reply_message_id  text,
    reply_text        text,
    -- When a send began (status sending): a retry that finds it did not learn the outcome.
    sending_at        timestamptz,
    replied_at        timestamptz,
    job_id            uuid,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store_id, message_id)
);
CREATE INDEX email_messages_store ON email_messages (store_id, received_at DESC, id);
CREATE INDEX email_messages_conversation ON email_messages (store_id, conversation_id, received_at);
CREATE INDEX email_messages_owner ON email_messages (owner_id, received_at DESC);
