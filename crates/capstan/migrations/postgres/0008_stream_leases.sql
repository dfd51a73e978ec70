-- Which process streams each distribution account. Several replicas may run the watcher;
-- one owns an account's stream at a time, renews the lease while it runs, and every batch it
-- writes checks that it still owns it. When the owner dies, another replica takes the
-- lease once it has run out and resumes from the stored cursor.
CREATE TABLE stream_leases (
    account TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    -- unix seconds; 0 after the owner released it
    lease_until BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
