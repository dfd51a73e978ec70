-- The payment watcher: every incoming Stellar payment it has seen, matched or not, and
-- where each distribution account's stream stands. A payment row, the transaction it
-- funded and the stream's cursor are written in one database transaction, so a restart
-- neither skips nor counts twice.
CREATE TABLE incoming_payments (
    -- the source's unique id of the operation (Horizon's operation id)
    id TEXT PRIMARY KEY,
    -- the distribution account it was paid to (base G)
    account TEXT NOT NULL,
    -- the stream position just after it (Horizon's paging token)
    cursor TEXT NOT NULL,
    stellar_transaction_id TEXT NOT NULL,
    -- payment, path_payment_strict_send, path_payment_strict_receive
    kind TEXT NOT NULL,
    from_account TEXT NOT NULL,
    -- the muxed id when it was paid to an M... address
    to_muxed_id TEXT,
    asset_code TEXT NOT NULL,
    -- empty for the native asset
    asset_issuer TEXT NOT NULL,
    amount TEXT NOT NULL,
    -- none, id, text, hash, return; memo as the network has it (hash and return in base64)
    memo_type TEXT NOT NULL,
    memo TEXT,
    -- when the network closed it (unix seconds) and when capstan recorded it
    paid_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    -- matched: it funded transaction_id; unmatched: held for the operator, with the reason
    outcome TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    -- the transaction it funded, or the one its memo names when it was not matched
    transaction_id TEXT,
    -- what the operator did with an unmatched payment: attached, refund
    resolution TEXT,
    resolution_note TEXT,
    resolved_by TEXT,
    resolved_at BIGINT
);
CREATE INDEX incoming_payments_unmatched ON incoming_payments (outcome, recorded_at);
CREATE INDEX incoming_payments_transaction ON incoming_payments (transaction_id);

CREATE TABLE watcher_cursors (
    account TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
