-- Secrets capstan generates for a development anchor (signing seed, JWT secret, demo
-- asset keys), so that a restart keeps the same identity.
CREATE TABLE generated_secrets (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- SEP-10 challenges that already yielded a token, kept until they expire (replay protection
-- that holds across restarts and replicas).
CREATE TABLE used_challenges (
    hash TEXT NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_challenges_expires_at ON used_challenges (expires_at);
