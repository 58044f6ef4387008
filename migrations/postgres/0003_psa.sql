-- PSA integration (ConnectWise Manage, Autotask, HaloPSA): one connection per team, its chat-user
-- to PSA-member mapping, and the post log of every note pushed to a ticket.

-- Credentials are encrypted by the application (XChaCha20-Poly1305 with the account and the
-- connection id as associated data, "v1:{key id}:{base64}"); settings hold nothing secret.
CREATE TABLE psa_connections (
    id            UUID PRIMARY KEY NOT NULL,
    account_id    UUID NOT NULL REFERENCES accounts(id),
    team_id       UUID NOT NULL REFERENCES teams(id),
    provider      TEXT NOT NULL,
    settings      TEXT NOT NULL,                -- JSON
    credentials   TEXT NOT NULL,                -- sealed JSON
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (account_id, team_id)
);

CREATE TABLE psa_members (
    connection_id UUID NOT NULL REFERENCES psa_connections(id) ON DELETE CASCADE,
    account_id    UUID NOT NULL REFERENCES accounts(id),
    user_id       UUID NOT NULL REFERENCES users(id),
    member_id     TEXT NOT NULL,
    member_name   TEXT NOT NULL,
    member_email  TEXT,
    source        TEXT NOT NULL,                -- email | manual
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, user_id)
);

CREATE TABLE psa_notes (
    id               UUID PRIMARY KEY NOT NULL,
    account_id       UUID NOT NULL REFERENCES accounts(id),
    session_id       UUID NOT NULL REFERENCES sessions(id),
    idempotency_key  TEXT NOT NULL,
    ticket           TEXT NOT NULL,
    version          TEXT NOT NULL,
    body             TEXT NOT NULL,
    requested_by     UUID NOT NULL REFERENCES users(id),
    status           TEXT NOT NULL,             -- queued | posted | failed
    member           TEXT,
    psa_note_id      TEXT,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    posted_at        BIGINT,
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX psa_notes_session ON psa_notes(account_id, session_id, created_at);
