-- A converting SEP-31 transaction's SEP-38 terms get their own column: `conversion`, a JSON
-- object {amount_in_asset, amount_out_asset, decimals, quote_id?, quote_expires_at?, price?}.
-- Until now they were kept as an object in `fee_details`, which otherwise holds the array
-- of fee parts; from now on `fee_details` is always that array.
ALTER TABLE transactions ADD COLUMN conversion TEXT;
UPDATE transactions
SET conversion = (fee_details::jsonb - 'fee')::text,
    fee_details = COALESCE((fee_details::jsonb #> '{fee,details}')::text, '[]')
WHERE fee_details LIKE '{%';

-- SEP38-09: a firm quote's buy amount is held in reserve until it expires. The amount in
-- units of 10^-7 (the most decimals an asset may have) lets unexpired reservations be
-- summed exactly in SQL. Quotes issued before this migration reserve nothing.
ALTER TABLE quotes ADD COLUMN buy_amount_units BIGINT NOT NULL DEFAULT 0;
CREATE INDEX quotes_reserved ON quotes (buy_asset, expires_at);

-- One row per off-chain asset, written first by every reservation of that asset so that
-- reservations of one asset are made one at a time (a row lock on PostgreSQL, the write
-- lock on SQLite) and two replicas cannot both promise the last of it.
CREATE TABLE quote_reservation_locks (
    buy_asset TEXT PRIMARY KEY,
    reserved_at BIGINT NOT NULL
);
