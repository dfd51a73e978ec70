-- Paying the receiver out: one row per transaction the executor has taken up. The claim is
-- a lease (several executors never hold the same transaction); `state` says where the
-- current round stands, so a round interrupted by a crash is reconciled, not paid again.
CREATE TABLE payouts (
    transaction_id TEXT PRIMARY KEY REFERENCES transactions (id) ON DELETE CASCADE,
    -- a new round each time the transaction comes back to pending_receiver (after a
    -- correction, or a payout the rails returned)
    round BIGINT NOT NULL,
    -- what the rails receive, to recognise a repeated request: the transaction id, with
    -- ":<round>" from the second round on
    idempotency_key TEXT NOT NULL,
    -- claimed (leased, the rails not called yet), executing (leased, the rails called),
    -- waiting (to retry), done (the outcome is applied), held (for the operator: an
    -- interrupted round whose outcome the rails cannot tell)
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    -- bumped by every write (compare-and-set)
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payouts_state ON payouts (state, next_attempt_at);

-- The simulated rails' own ledger: one payout per idempotency key, however often it is
-- asked for, so the simulation is as idempotent as real rails must be.
CREATE TABLE simulated_payouts (
    idempotency_key TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    -- completed, pending_external, needs_customer_info, needs_transaction_info, error
    outcome TEXT NOT NULL,
    calls BIGINT NOT NULL,
    delivered BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX simulated_payouts_transaction ON simulated_payouts (transaction_id);
