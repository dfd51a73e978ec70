-- Callbacks of one subject (a customer, a transaction) go out in the order they were queued:
-- the sender claims only the oldest pending one of each subject. This index finds it.
CREATE INDEX callback_outbox_pending_subject ON callback_outbox (subject, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
