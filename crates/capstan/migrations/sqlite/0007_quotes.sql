-- SEP-38 firm quotes. A quote belongs to the SEP-10 account (and memo) that asked for it,
-- is used by at most one SEP-31 transaction (`transaction_id`, set in the database
-- transaction that stores it), and stays readable after `expires_at`.
CREATE TABLE quotes (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    -- the SEP-10 memo of a shared account; '' when there is none
    memo TEXT NOT NULL,
    context TEXT NOT NULL,
    sell_asset TEXT NOT NULL,
    sell_amount TEXT NOT NULL,
    sell_delivery_method TEXT,
    buy_asset TEXT NOT NULL,
    buy_amount TEXT NOT NULL,
    buy_delivery_method TEXT,
    country_code TEXT,
    price TEXT NOT NULL,
    total_price TEXT NOT NULL,
    -- {"total", "asset", "details"}
    fee TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    transaction_id TEXT UNIQUE,
    used_at BIGINT
);
CREATE INDEX quotes_account ON quotes (account, created_at);
