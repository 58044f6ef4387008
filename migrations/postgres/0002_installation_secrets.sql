-- Secrets an installation needs (a Slack workspace's bot token), encrypted by the application
-- (XChaCha20-Poly1305, "v1:{key id}:{base64}"); never stored in plain text.
CREATE TABLE installation_secrets (
    platform     TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    sealed       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (platform, external_id, purpose),
    FOREIGN KEY (platform, external_id) REFERENCES installations(platform, external_id)
);
