-- SEP-12 customers. A customer is one (account, memo) pair: the base G account of the
-- client that registered it and, for a shared account, the memo naming one of its users
-- ('' when there is none). Personal data lives only in customer_fields and customer_files,
-- so erasing a customer is deleting its rows.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    memo_type TEXT NOT NULL DEFAULT '',
    -- the type of the last PUT: what callbacks report on when no type was registered
    last_type TEXT NOT NULL DEFAULT '',
    -- the operator's reason, once the customer is REJECTED for good
    rejection TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account, memo)
);

-- The built-in store's field values. value is NULL for a binary field (file_id names the
-- file) and for a field an operator asked for that was never sent.
CREATE TABLE customer_fields (
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT,
    file_id TEXT,
    status TEXT NOT NULL,
    error TEXT,
    verification_code TEXT,
    -- wrong codes in a row; the code is replaced after a few, so it cannot be guessed
    verification_failures BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, name)
);

-- Uploaded files. Owned by the uploader's (account, memo) until a PUT attaches them to a
-- customer. data is NULL when the bytes live in kyc.files_dir.
CREATE TABLE customer_files (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    customer_id TEXT REFERENCES customers (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BLOB,
    created_at BIGINT NOT NULL
);
CREATE INDEX customer_files_owner ON customer_files (account, memo);
CREATE INDEX customer_files_customer ON customer_files (customer_id);

-- PUT /customer/callback registrations. last_status is what the client was last told
-- (or saw at registration), so a change is noticed once, by whichever replica looks first.
CREATE TABLE customer_callbacks (
    customer_id TEXT PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    kyc_type TEXT NOT NULL,
    last_status TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Signed callbacks waiting to be delivered, kept until delivered or given up on, so a
-- restart loses none. subject names what the callback is about (customer:<id>).
CREATE TABLE callback_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    failed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX callback_outbox_subject ON callback_outbox (subject);
