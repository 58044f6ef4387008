-- The copilot: suggested fixes (one active per session; a new one supersedes it) and flow
-- proposals drafted by the AI flow builder or the knowledge flywheel, waiting for review.

CREATE TABLE suggested_fixes (
    id            BLOB PRIMARY KEY NOT NULL,
    account_id    BLOB NOT NULL REFERENCES accounts(id),
    session_id    BLOB NOT NULL REFERENCES sessions(id),
    proposal      TEXT NOT NULL,                -- JSON: title, rationale, steps, script, confidence
    created_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    decision      TEXT,                         -- one_off | draft_template | build_template | dismissed
    decided_by    BLOB REFERENCES users(id),
    decided_at    INTEGER
);
CREATE INDEX suggested_fixes_session ON suggested_fixes(account_id, session_id, created_at);
CREATE UNIQUE INDEX suggested_fixes_active ON suggested_fixes(session_id) WHERE superseded_at IS NULL;

CREATE TABLE flow_proposals (
    id              BLOB PRIMARY KEY NOT NULL,
    account_id      BLOB NOT NULL REFERENCES accounts(id),
    title           TEXT NOT NULL,
    yaml            TEXT NOT NULL,
    rationale       TEXT NOT NULL,
    origin          TEXT NOT NULL,              -- builder | flywheel
    source_sessions TEXT NOT NULL,              -- JSON array of session ids
    status          TEXT NOT NULL,              -- pending | accepted | rejected
    requested_by    BLOB REFERENCES users(id),
    reviewer_id     BLOB REFERENCES users(id),
    reviewed_at     INTEGER,
    flow_id         BLOB REFERENCES flows(id),
    fingerprint     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (account_id, fingerprint)
);
CREATE INDEX flow_proposals_status ON flow_proposals(account_id, status, created_at);
