-- PSA integration (ConnectWise Manage, Autotask, HaloPSA): one connection per team, its chat-user
-- to PSA-member mapping, and the post log of every note pushed to a ticket.

-- Credentials are encrypted by the application (XChaCha20-Poly1305 with the account and the
-- connection id as associated data, "v1:{key id}:{base64}"); settings hold nothing secret.
CREATE TABLE psa_connections (
    id            BLOB PRIMARY KEY NOT NULL,
    account_id    BLOB NOT NULL REFERENCES accounts(id),
    team_id       BLOB NOT NULL REFERENCES teams(id),
    provider      TEXT NOT NULL,
    settings      TEXT NOT NULL,                -- JSON
    credentials   TEXT NOT NULL,                -- sealed JSON
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (account_id, team_id)
);

CREATE TABLE psa_members (
    connection_id BLOB NOT NULL REFERENCES psa_connections(id) ON DELETE CASCADE,
    account_id    BLOB NOT NULL REFERENCES accounts(id),
    user_id       BLOB NOT NULL REFERENCES users(id),
    member_id     TEXT NOT NULL,
    member_name   TEXT NOT NULL,
    member_email  TEXT,
    source        TEXT NOT NULL,                -- email | manual
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (connection_id, user_id)
);

CREATE TABLE psa_notes (
    id               BLOB PRIMARY KEY NOT NULL,
    account_id       BLOB NOT NULL REFERENCES accounts(id),
    session_id       BLOB NOT NULL REFERENCES sessions(id),
    idempotency_key  TEXT NOT NULL,
    ticket           TEXT NOT NULL,
    version          TEXT NOT NULL,
    body             TEXT NOT NULL,
    requested_by     BLOB NOT NULL REFERENCES users(id),
    status           TEXT NOT NULL,             -- queued | posted | failed
    member           TEXT,
    psa_note_id      TEXT,
    error            TEXT,
    created_at       INTEGER NOT NULL,
    posted_at        INTEGER,
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX psa_notes_session ON psa_notes(account_id, session_id, created_at);
