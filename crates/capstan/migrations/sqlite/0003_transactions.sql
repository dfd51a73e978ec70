-- SEP-31 transactions. Amounts are decimal strings (exact on both backends); times are
-- unix seconds. status is written only by the status machine (Store::transition), which
-- appends a transaction_events row in the same database transaction.
CREATE TABLE transactions (
    id TEXT PRIMARY KEY,
    -- the base G account of the sending anchor that created it: its owner
    sending_anchor TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    asset_code TEXT NOT NULL,
    asset_issuer TEXT NOT NULL,
    funding_method TEXT NOT NULL,
    amount_in TEXT NOT NULL,
    amount_fee TEXT NOT NULL,
    amount_out TEXT NOT NULL,
    -- fee_details.details as JSON ([{"name", "amount"}])
    fee_details TEXT NOT NULL,
    sender_id TEXT,
    receiver_id TEXT,
    stellar_account_id TEXT,
    stellar_memo_type TEXT,
    stellar_memo TEXT,
    refund_memo TEXT,
    refund_memo_type TEXT,
    -- the deprecated per-transaction fields, as a JSON object
    fields TEXT NOT NULL DEFAULT '{}',
    required_info_message TEXT,
    required_info_updates TEXT,
    stellar_transaction_id TEXT,
    external_transaction_id TEXT,
    -- refunds object as JSON, once there is one
    refunds TEXT,
    paid BOOLEAN NOT NULL DEFAULT FALSE,
    -- bumped by every write, so concurrent writers notice each other (compare-and-set)
    version BIGINT NOT NULL DEFAULT 0,
    callback_url TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    -- a transaction still pending_sender at this time expires
    expires_at BIGINT
);
-- Payments are matched by memo alone (SEP31-10): one memo, one transaction.
CREATE UNIQUE INDEX transactions_memo ON transactions (stellar_memo) WHERE stellar_memo IS NOT NULL;
CREATE INDEX transactions_owner ON transactions (sending_anchor, started_at);
CREATE INDEX transactions_status ON transactions (status, updated_at);
CREATE INDEX transactions_sender ON transactions (sender_id);
CREATE INDEX transactions_receiver ON transactions (receiver_id);

-- Every status change: who made it, from what, to what, and why.
CREATE TABLE transaction_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL REFERENCES transactions (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX transaction_events_transaction ON transaction_events (transaction_id, id);
