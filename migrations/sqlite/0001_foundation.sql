-- ResolutionFlow schema, SQLite dialect. Ids are UUIDv7 (16-byte BLOBs), times are Unix milliseconds,
-- structured values are JSON text. Every tenant-owned table carries account_id.

CREATE TABLE accounts (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE teams (
    id          BLOB PRIMARY KEY NOT NULL,
    account_id  BLOB NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',   -- JSON: escalation channels, ladder, working hours, idle policy
    created_at  INTEGER NOT NULL
);
CREATE INDEX teams_account ON teams(account_id);

-- A Slack workspace, Discord guild, Teams tenant or the local console, mapped to an account.
CREATE TABLE installations (
    platform     TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    team_id      BLOB NOT NULL REFERENCES teams(id),
    created_at   INTEGER NOT NULL,
    disabled_at  INTEGER,
    PRIMARY KEY (platform, external_id)
);

CREATE TABLE users (
    id                BLOB PRIMARY KEY NOT NULL,
    account_id        BLOB NOT NULL REFERENCES accounts(id),
    team_id           BLOB NOT NULL REFERENCES teams(id),
    platform          TEXT NOT NULL,
    platform_user_id  TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    email             TEXT,
    role              TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (account_id, platform, platform_user_id)
);

CREATE TABLE flows (
    seq          INTEGER PRIMARY KEY,           -- stable rowid for the full-text index
    id           BLOB NOT NULL UNIQUE,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    slug         TEXT NOT NULL,
    title        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL,
    tags         TEXT NOT NULL,                 -- JSON array
    folder       TEXT,
    symptoms     TEXT NOT NULL,                 -- JSON array
    body_text    TEXT NOT NULL,
    status       TEXT NOT NULL,
    source       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    definition   TEXT NOT NULL,                 -- JSON of the validated flow
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (account_id, slug)
);

CREATE VIRTUAL TABLE flows_fts USING fts5(
    title, symptoms, tags, category, description, body_text,
    content = 'flows', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER flows_fts_insert AFTER INSERT ON flows BEGIN
    INSERT INTO flows_fts(rowid, title, symptoms, tags, category, description, body_text)
    VALUES (new.seq, new.title, new.symptoms, new.tags, new.category, new.description, new.body_text);
END;

CREATE TRIGGER flows_fts_delete AFTER DELETE ON flows BEGIN
    INSERT INTO flows_fts(flows_fts, rowid, title, symptoms, tags, category, description, body_text)
    VALUES ('delete', old.seq, old.title, old.symptoms, old.tags, old.category, old.description, old.body_text);
END;

CREATE TRIGGER flows_fts_update AFTER UPDATE ON flows BEGIN
    INSERT INTO flows_fts(flows_fts, rowid, title, symptoms, tags, category, description, body_text)
    VALUES ('delete', old.seq, old.title, old.symptoms, old.tags, old.category, old.description, old.body_text);
    INSERT INTO flows_fts(rowid, title, symptoms, tags, category, description, body_text)
    VALUES (new.seq, new.title, new.symptoms, new.tags, new.category, new.description, new.body_text);
END;

CREATE TABLE sessions (
    id             BLOB PRIMARY KEY NOT NULL,
    account_id     BLOB NOT NULL REFERENCES accounts(id),
    team_id        BLOB NOT NULL REFERENCES teams(id),
    platform       TEXT NOT NULL,
    workspace      TEXT NOT NULL,
    channel        TEXT NOT NULL,
    thread         TEXT NOT NULL,
    owner_id       BLOB NOT NULL REFERENCES users(id),
    created_by     BLOB NOT NULL REFERENCES users(id),
    problem        TEXT NOT NULL,
    status         TEXT NOT NULL,
    conversation   TEXT NOT NULL,               -- JSON of the conversation state
    flow_id        BLOB REFERENCES flows(id),
    flow           TEXT,                        -- JSON snapshot of the flow being followed
    psa_ticket     TEXT,
    handoff_id     BLOB,                         -- the open park/escalate handoff
    resolution     TEXT,
    state_version  INTEGER NOT NULL,
    lock_version   INTEGER NOT NULL,
    next_seq       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    resolved_at    INTEGER,
    UNIQUE (platform, workspace, channel, thread)
);
CREATE INDEX sessions_account_updated ON sessions(account_id, updated_at);

CREATE TABLE timeline_steps (
    id          BLOB PRIMARY KEY NOT NULL,
    account_id  BLOB NOT NULL REFERENCES accounts(id),
    session_id  BLOB NOT NULL REFERENCES sessions(id),
    seq         INTEGER NOT NULL,
    actor_id    BLOB REFERENCES users(id),
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,                  -- JSON of the step
    created_at  INTEGER NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX timeline_steps_account_created ON timeline_steps(account_id, created_at);
-- Covers "the claimer's first step after the claim" (metrics, idle checks) without touching rows.
CREATE INDEX timeline_steps_session_actor ON timeline_steps(session_id, actor_id, created_at, kind);

CREATE TABLE facts (
    id          BLOB PRIMARY KEY NOT NULL,
    account_id  BLOB NOT NULL REFERENCES accounts(id),
    session_id  BLOB NOT NULL REFERENCES sessions(id),
    text        TEXT NOT NULL,
    source      TEXT NOT NULL,
    author_id   BLOB REFERENCES users(id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX facts_session ON facts(session_id, created_at);

-- Park / escalate handoffs.
CREATE TABLE handoffs (
    id               BLOB PRIMARY KEY NOT NULL,
    account_id       BLOB NOT NULL REFERENCES accounts(id),
    team_id          BLOB NOT NULL REFERENCES teams(id),
    session_id       BLOB NOT NULL REFERENCES sessions(id),
    intent           TEXT NOT NULL,             -- park | escalate
    requested_by     BLOB NOT NULL REFERENCES users(id),
    reason           TEXT NOT NULL,
    priority         TEXT NOT NULL,
    snapshot         TEXT NOT NULL,             -- JSON
    assessment       TEXT NOT NULL,             -- JSON
    claimed_by       BLOB REFERENCES users(id),
    claimed_at       INTEGER,
    acknowledged_at  INTEGER,
    claim_count      INTEGER NOT NULL DEFAULT 0,
    release_count    INTEGER NOT NULL DEFAULT 0,
    closed_at        INTEGER,
    created_at       INTEGER NOT NULL
);
CREATE INDEX handoffs_account_created ON handoffs(account_id, created_at);
CREATE INDEX handoffs_session ON handoffs(session_id);

-- Every claim, and when it was released: releases and re-claims are history, not counters only.
CREATE TABLE handoff_claims (
    id           BLOB PRIMARY KEY NOT NULL,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    handoff_id   BLOB NOT NULL REFERENCES handoffs(id),
    user_id      BLOB NOT NULL REFERENCES users(id),
    claimed_at   INTEGER NOT NULL,
    released_at  INTEGER
);
CREATE INDEX handoff_claims_handoff ON handoff_claims(handoff_id, claimed_at);

-- One row per (handoff, channel, recipient): delivery state lives here, not in booleans.
CREATE TABLE notification_deliveries (
    id           BLOB PRIMARY KEY NOT NULL,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    handoff_id   BLOB NOT NULL REFERENCES handoffs(id),
    channel      TEXT NOT NULL,                 -- chat_card | chat_dm | email | companion_stream
    recipient    TEXT NOT NULL,
    purpose      TEXT NOT NULL,                 -- card | reminder | ladder | idle_reminder | stream
    status       TEXT NOT NULL,                 -- queued | sent | failed | suppressed
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    message_ref  TEXT,                          -- JSON: where a card was posted
    sent_at      INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (handoff_id, channel, recipient)
);

-- Background jobs, written in the same transaction as the change that needs them.
CREATE TABLE jobs (
    id            BLOB PRIMARY KEY NOT NULL,
    account_id    BLOB NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,                -- JSON
    coalesce_key  TEXT,
    status        TEXT NOT NULL,                -- queued | running | failed (done jobs are deleted)
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(status, run_at);
-- While one job with a coalesce key waits, a second is not added.
CREATE UNIQUE INDEX jobs_coalesce ON jobs(coalesce_key) WHERE status = 'queued';

-- The account-scoped event stream behind the live queue (SSE ids are `seq`).
CREATE TABLE handoff_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   BLOB NOT NULL REFERENCES accounts(id),
    kind         TEXT NOT NULL,
    summary      TEXT NOT NULL,                 -- JSON
    created_at   INTEGER NOT NULL
);
CREATE INDEX handoff_events_account ON handoff_events(account_id, seq);

CREATE TABLE share_links (
    id          BLOB PRIMARY KEY NOT NULL,
    account_id  BLOB NOT NULL REFERENCES accounts(id),
    user_id     BLOB NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    scope_kind  TEXT NOT NULL,
    scope_id    BLOB,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX share_links_account ON share_links(account_id, created_at);

-- Inbound deliveries already seen (platform retries are acknowledged and dropped).
CREATE TABLE inbound_events (
    source       TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (source, event_key)
);
CREATE INDEX inbound_events_received ON inbound_events(received_at);
