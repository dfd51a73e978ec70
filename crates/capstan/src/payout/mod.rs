//! Paying receivers out (the seeds' `execute_outgoing_transactions` and
//! `poll_outgoing_transactions`). The executor claims funded `pending_receiver`
//! transactions with a lease, records the round before it calls the rails, and writes the
//! outcome together with the status change; a round cut short by a crash is reconciled
//! through the rails, never blindly paid again. The poller follows up payouts the rails
//! left `pending_external`.

pub mod business;
pub mod rails;
pub mod simulated;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::anchor::AppState;
use crate::sep31::status::Status;
use crate::sep31::transactions::transaction_body;
use crate::store::{
    Claimed, PayoutRow, RoundEnd, RoundWritten, TransactionRow, TransitionWrite,
    prepare_transition, unix_now,
};
use rails::{Outcome, Payout, RailsError, Reconciled};

/// The actor written in the events of the status changes the rails make.
pub const ACTOR: &str = "rails";
/// Transactions claimed per pass. With rails that take batches, a pass's statements and
/// commits are nearly the same for 50 payouts as for 100: 100 made 7,060 payouts/s on SQLite
/// where 50 made 5,073 (the executor benchmark of capstan-load, back to back, one process).
const BATCH: i64 = 100;
/// Attempts at writing an outcome over a transaction that keeps changing.
const WRITE_ATTEMPTS: usize = 8;

/// Passes in a row that found claimable transactions but took none (another executor was
/// quicker) before the executor waits for its interval anyway.
const LOST_PASSES: usize = 3;

/// Runs the executor until `stopped`: a pass every `interval`, and at once when woken.
pub async fn run_executor(
    anchor: AppState,
    mut stopped: watch::Receiver<bool>,
    interval: Duration,
) {
    let Some(_) = &anchor.rails else { return };
    let owner = format!("executor-{}", uuid::Uuid::new_v4());
    let mut lost = 0;
    loop {
        // A pass that took anything may have left more waiting (a full batch, or one
        // shared with another executor that won the rest): go on without sleeping. So does
        // one that lost everything it found to another executor, which leaves the rest.
        let pass = execute_batch(&anchor, &owner, Some(&stopped)).await;
        lost = if pass.claimed == 0 && pass.found > 0 {
            lost + 1
        } else {
            0
        };
        if pass.claimed == 0 && (pass.found == 0 || lost > LOST_PASSES) {
            lost = 0;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = anchor.payout_wake.notified() => {}
                _ = stopped.changed() => return,
            }
        } else if *stopped.borrow() {
            return;
        }
    }
}

/// Runs the poller until `stopped`.
pub async fn run_poller(anchor: AppState, mut stopped: watch::Receiver<bool>, interval: Duration) {
    let Some(_) = &anchor.rails else { return };
    loop {
        poll_due(&anchor).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// One executor pass: claims what is due and executes it. Returns how many it took.
pub async fn execute_due(anchor: &AppState, owner: &str) -> usize {
    execute_batch(anchor, owner, None).await.claimed
}

/// What a pass found claimable, and how much of it it took.
struct Pass {
    found: usize,
    claimed: usize,
}

/// A pass that stops early when `stopped` says so: the call in flight finishes, and the
/// rounds claimed but not begun are given back at once rather than left to their lease.
/// Rounds cut short are reconciled one by one first; the others go to the rails together
/// when the rails take batches, one by one otherwise.
async fn execute_batch(
    anchor: &AppState,
    owner: &str,
    stopped: Option<&watch::Receiver<bool>>,
) -> Pass {
    let lease = lease_secs(anchor);
    let (found, claimed) = match anchor.store.claim_payout_batch(owner, BATCH, lease).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim payouts");
            return Pass {
                found: 0,
                claimed: 0,
            };
        }
    };
    let pass = Pass {
        found,
        claimed: claimed.len(),
    };
    let Some(rails) = &anchor.rails else {
        return pass;
    };
    let is_stopped = || stopped.is_some_and(|s| *s.borrow());
    let (interrupted, fresh): (Vec<Claimed>, Vec<Claimed>) =
        claimed.into_iter().partition(|c| c.interrupted);
    let (one_by_one, together) = if rails.executes_in_batches() {
        (interrupted, fresh)
    } else {
        (interrupted.into_iter().chain(fresh).collect(), Vec::new())
    };
    let mut left = Vec::new();
    let mut one_by_one = one_by_one.into_iter();
    for c in one_by_one.by_ref() {
        if is_stopped() {
            left.push(c);
            break;
        }
        execute_one(anchor, c).await;
    }
    left.extend(one_by_one);
    if !together.is_empty() {
        if is_stopped() {
            left.extend(together);
        } else {
            execute_together(anchor, together).await;
        }
    }
    for c in left {
        if let Err(e) = anchor.store.release_claim(&c.payout).await {
            tracing::warn!(transaction = %c.transaction.id, error = %e, "cannot give back a payout claim; its lease will run out");
        }
    }
    pass
}

/// The lease outlasts the longest rails call (reconcile, then execute) with room to write
/// the outcome, so a live executor never loses its round; it is renewed before each call.
fn lease_secs(anchor: &AppState) -> i64 {
    anchor.config.rails.timeout.as_secs() as i64 * 2 + 5
}

/// Fresh rounds (none cut short) paid by one call of rails that take batches: all begun in
/// one write, then one call bound by one timeout, then the outcomes that change a status
/// written in one database transaction. Whatever does not fit that (retries, KYC
/// corrections, a round lost or a transaction changed meanwhile) is ended one by one, as
/// [`execute_one`] ends it.
async fn execute_together(anchor: &AppState, claimed: Vec<Claimed>) {
    let Some(rails) = &anchor.rails else { return };
    let rows: Vec<PayoutRow> = claimed.iter().map(|c| c.payout.clone()).collect();
    let begun = match anchor.store.begin_rounds(&rows, lease_secs(anchor)).await {
        Ok(begun) => begun,
        Err(e) => {
            tracing::warn!(error = %e, rounds = rows.len(), "cannot begin payout rounds");
            return;
        }
    };
    let mut begun: HashMap<String, PayoutRow> = begun
        .into_iter()
        .map(|p| (p.transaction_id.clone(), p))
        .collect();
    let rounds: Vec<Claimed> = claimed
        .into_iter()
        .filter_map(|mut c| {
            c.payout = begun.remove(&c.transaction.id)?;
            Some(c)
        })
        .collect();
    if rounds.is_empty() {
        return;
    }
    let payouts: Vec<Payout<'_>> = rounds
        .iter()
        .map(|c| {
            tracing::info!(transaction = %c.transaction.id, key = %c.payout.idempotency_key, round = c.payout.round, attempt = c.payout.attempts, "executing payout");
            Payout {
                transaction: &c.transaction,
                idempotency_key: &c.payout.idempotency_key,
                round: c.payout.round,
            }
        })
        .collect();
    let answers = tokio::time::timeout(anchor.config.rails.timeout, rails.execute_all(&payouts))
        .await
        .ok()
        .filter(|answers| answers.len() == payouts.len());
    drop(payouts);
    let Some(answers) = answers else {
        // The call may or may not have reached the rails: reconciled on a later pass.
        for c in &rounds {
            retry_reconcile(
                anchor,
                &c.payout,
                "the rails did not answer for every payout in time",
            )
            .await;
        }
        return;
    };
    let mut changes: Vec<(&Claimed, Outcome, TransactionRow, String, Option<String>)> =
        Vec::with_capacity(rounds.len());
    for (c, answer) in rounds.iter().zip(answers) {
        let outcome = match answer {
            Ok(Outcome::NeedsCustomerInfo { .. }) | Err(RailsError::Retryable(_)) => {
                settle(anchor, c, answer).await;
                continue;
            }
            Ok(outcome) => outcome,
            Err(RailsError::Permanent(message)) => Outcome::Error { message },
        };
        let (to, reason) = target(&outcome);
        match prepare_transition(&c.transaction, to, |t| edit(&outcome, t)) {
            Ok(next) => {
                let body = next
                    .callback_url
                    .as_ref()
                    .map(|_| transaction_body(&next).to_string());
                changes.push((c, outcome, next, reason, body));
            }
            // Refused: ended alone, which holds the round for the operator.
            Err(_) => apply(anchor, c, outcome).await,
        }
    }
    if changes.is_empty() {
        return;
    }
    let ends: Vec<(&PayoutRow, TransitionWrite<'_>)> = changes
        .iter()
        .map(|(c, _, next, reason, body)| {
            (
                &c.payout,
                TransitionWrite {
                    current: &c.transaction,
                    next,
                    reason: Some(reason.as_str()),
                    callback_body: body.as_deref(),
                },
            )
        })
        .collect();
    let written = anchor.store.end_rounds_done(&ends, ACTOR).await;
    drop(ends);
    match written {
        Ok(true) => {
            for (c, _, next, _, _) in &changes {
                tracing::info!(transaction = %c.transaction.id, status = %next.status, "payout round done");
            }
            // Only a queued callback needs the sender: its claim takes the write lock.
            if changes.iter().any(|(.., body)| body.is_some()) {
                anchor.outbox_wake.notify_one();
            }
        }
        Ok(false) | Err(_) => {
            if let Err(e) = written {
                tracing::warn!(error = %e, "cannot record a batch of payout rounds; ending them one by one");
            }
            for (c, outcome, ..) in changes {
                apply(anchor, c, outcome).await;
            }
        }
    }
}

async fn execute_one(anchor: &AppState, mut c: Claimed) {
    let Some(rails) = &anchor.rails else { return };
    // Claimed in a batch: the lease is renewed now, so this call has all of it.
    match anchor
        .store
        .renew_lease(&c.payout, lease_secs(anchor))
        .await
    {
        Ok(Some(renewed)) => c.payout = renewed,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(transaction = %c.transaction.id, error = %e, "cannot renew a payout lease");
            return;
        }
    }
    let payout = Payout {
        transaction: &c.transaction,
        idempotency_key: &c.payout.idempotency_key,
        round: c.payout.round,
    };
    let id = &c.transaction.id;
    let timeout = anchor.config.rails.timeout;
    if c.interrupted {
        tracing::warn!(transaction = %id, key = %payout.idempotency_key, "a payout round was cut short; asking the rails what became of it");
        match tokio::time::timeout(timeout, rails.reconcile(&payout)).await {
            Ok(Ok(Reconciled::Executed(outcome))) => {
                return apply(anchor, &c, outcome).await;
            }
            Ok(Ok(Reconciled::NotExecuted)) => {}
            Ok(Ok(Reconciled::Unknown)) => {
                return hold(
                    anchor,
                    &c.payout,
                    "the payout was cut short and the rails cannot tell whether it was made",
                )
                .await;
            }
            Ok(Err(e)) => return retry_reconcile(anchor, &c.payout, &e.to_string()).await,
            Err(_) => {
                return retry_reconcile(anchor, &c.payout, "the rails did not answer in time")
                    .await;
            }
        }
    }
    tracing::info!(transaction = %id, key = %payout.idempotency_key, round = payout.round, attempt = c.payout.attempts, "executing payout");
    match tokio::time::timeout(timeout, rails.execute(&payout)).await {
        Ok(answer) => settle(anchor, &c, answer).await,
        // The call may or may not have reached the rails: reconciled on the next pass.
        Err(_) => retry_reconcile(anchor, &c.payout, "the rails did not answer in time").await,
    }
}

/// Ends a round with the rails' answer to its call.
async fn settle(anchor: &AppState, c: &Claimed, answer: Result<Outcome, RailsError>) {
    match answer {
        Ok(outcome) => apply(anchor, c, outcome).await,
        Err(RailsError::Permanent(message)) => apply(anchor, c, Outcome::Error { message }).await,
        Err(RailsError::Retryable(message)) => {
            if c.payout.attempts >= i64::from(anchor.config.rails.max_attempts) {
                let message = format!(
                    "the payout failed {} times; last: {message}",
                    c.payout.attempts
                );
                apply(anchor, c, Outcome::Error { message }).await
            } else {
                let wait = backoff_secs(c.payout.attempts);
                tracing::warn!(transaction = %c.transaction.id, error = %message, retry_in_secs = wait, "payout failed; will retry");
                end(
                    anchor,
                    &c.payout,
                    RoundEnd {
                        state: "waiting",
                        next_attempt_at: unix_now() + wait,
                        last_error: Some(&message),
                        transition: None,
                    },
                )
                .await;
            }
        }
    }
}

fn backoff_secs(attempts: i64) -> i64 {
    2i64.saturating_pow(attempts.clamp(0, 12) as u32).min(3600)
}

/// Leaves the round executing with its lease run out, so the next pass reconciles it.
async fn retry_reconcile(anchor: &AppState, payout: &PayoutRow, error: &str) {
    tracing::warn!(transaction = %payout.transaction_id, %error, "payout outcome unknown; it will be reconciled");
    end(
        anchor,
        payout,
        RoundEnd {
            state: "executing",
            next_attempt_at: unix_now() + backoff_secs(payout.attempts),
            last_error: Some(error),
            transition: None,
        },
    )
    .await;
}

async fn hold(anchor: &AppState, payout: &PayoutRow, why: &str) {
    tracing::error!(transaction = %payout.transaction_id, key = %payout.idempotency_key, why, "payout held for the operator");
    end(
        anchor,
        payout,
        RoundEnd {
            state: "held",
            next_attempt_at: 0,
            last_error: Some(why),
            transition: None,
        },
    )
    .await;
}

async fn end(anchor: &AppState, payout: &PayoutRow, round_end: RoundEnd<'_>) {
    match anchor.store.end_round(payout, &round_end, ACTOR).await {
        Ok(RoundWritten::Done) => {}
        Ok(other) => {
            tracing::warn!(transaction = %payout.transaction_id, ?other, "payout round not recorded")
        }
        Err(e) => {
            tracing::warn!(transaction = %payout.transaction_id, error = %e, "cannot record the payout round; it will be reconciled")
        }
    }
}

/// The status an outcome sets, and how it edits the transaction.
fn target(outcome: &Outcome) -> (Status, String) {
    match outcome {
        Outcome::Completed { .. } => (Status::Completed, "paid out".into()),
        Outcome::PendingExternal { .. } => (Status::PendingExternal, "payout submitted".into()),
        Outcome::NeedsCustomerInfo { message, .. } => (
            Status::PendingCustomerInfoUpdate,
            format!("the rails need customer information: {message}"),
        ),
        Outcome::NeedsTransactionInfo { message, .. } => (
            Status::PendingTransactionInfoUpdate,
            format!("the rails need transaction information: {message}"),
        ),
        Outcome::Error { message } => (Status::Error, format!("payout failed: {message}")),
        Outcome::Refunded { message, .. } => (
            Status::Refunded,
            format!("refunded in full by the rails: {message}"),
        ),
        Outcome::Returned { message } => (
            Status::PendingReceiver,
            format!("the payout came back: {message}"),
        ),
    }
}

fn edit(outcome: &Outcome, t: &mut TransactionRow) {
    match outcome {
        Outcome::Completed { external_id } | Outcome::PendingExternal { external_id } => {
            if external_id.is_some() {
                t.external_transaction_id = external_id.clone();
            }
            t.status_message = None;
        }
        Outcome::NeedsCustomerInfo { message, .. } => t.status_message = Some(message.clone()),
        Outcome::NeedsTransactionInfo { message, fields } => {
            t.required_info_message = Some(message.clone());
            t.required_info_updates = Some(json!({ "transaction": fields }).to_string());
        }
        Outcome::Error { message } | Outcome::Returned { message } => {
            t.status_message = Some(message.clone())
        }
        Outcome::Refunded {
            message,
            stellar_transaction_id,
            fee,
        } => {
            // The whole payment went back: nothing is paid out (SEP-31's amounts
            // invariant, as the operator's full refund records it).
            let amount =
                crate::sep31::amounts::amount_string(t.amount_in.parse().unwrap_or_default());
            let fee = crate::sep31::amounts::amount_string(*fee);
            t.refunds = Some(
                json!({
                    "amount_refunded": amount,
                    "amount_fee": fee,
                    "payments": [{"id": stellar_transaction_id, "amount": amount, "fee": fee}],
                })
                .to_string(),
            );
            t.amount_out = "0".into();
            t.status_message = Some(message.clone());
        }
    }
}

/// Writes an executed round's outcome: the status change and the end of the round, in one
/// database transaction. An outcome the status machine refuses (the operator failed the
/// transaction meanwhile) is not stored: the round is held for the operator.
async fn apply(anchor: &AppState, c: &Claimed, outcome: Outcome) {
    match end_with(anchor, &c.payout, &c.transaction, &outcome, ACTOR).await {
        Ok(_) | Err(Ended::LeaseLost) => {}
        Err(Ended::Refused(why)) => hold(anchor, &c.payout, &why).await,
        Err(Ended::Failed(why)) => retry_reconcile(anchor, &c.payout, &why).await,
    }
}

/// Why a round's outcome was not written.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The status machine refuses it (the transaction moved on meanwhile).
    Refused(String),
    /// Another executor holds the round now.
    LeaseLost,
    /// The database failed, or the transaction kept changing.
    Failed(String),
}

/// Ends the round `payout` with `outcome`: the status change and the round's end in one
/// database transaction (fields the rails name are flagged in SEP-12 first).
async fn end_with(
    anchor: &AppState,
    payout: &PayoutRow,
    transaction: &TransactionRow,
    outcome: &Outcome,
    actor: &str,
) -> Result<TransactionRow, Ended> {
    let id = &transaction.id;
    if let Outcome::NeedsCustomerInfo {
        sender_fields,
        receiver_fields,
        ..
    } = outcome
    {
        flag_customers(anchor, transaction, sender_fields, receiver_fields)
            .await
            .map_err(Ended::Failed)?;
    }
    let (to, reason) = target(outcome);
    // The row as the caller read it is tried first; read again only when it changed.
    let mut known = Some(transaction.clone());
    for _ in 0..WRITE_ATTEMPTS {
        let (current, read_now) = match known.take() {
            Some(t) => (t, false),
            None => match anchor.store.transaction(id).await {
                Ok(Some(t)) => (t, true),
                Ok(None) => return Err(Ended::Refused(format!("transaction {id} is gone"))),
                Err(e) => return Err(Ended::Failed(e.to_string())),
            },
        };
        let next = match prepare_transition(&current, to, |t| edit(outcome, t)) {
            Ok(next) => next,
            // Only the row as it is now can refuse an outcome.
            Err(_) if !read_now => continue,
            Err(e) => return Err(Ended::Refused(format!("the rails answered {to}, but {e}"))),
        };
        let body = next
            .callback_url
            .as_ref()
            .map(|_| transaction_body(&next).to_string());
        let round_end = RoundEnd {
            state: "done",
            next_attempt_at: 0,
            last_error: None,
            transition: Some((&current, &next, &reason, body.as_deref())),
        };
        match anchor.store.end_round(payout, &round_end, actor).await {
            Ok(RoundWritten::Done) => {
                tracing::info!(transaction = %id, status = %to, "payout round done");
                // Only a queued callback needs the sender: its claim takes the write lock.
                if body.is_some() {
                    anchor.outbox_wake.notify_one();
                }
                if matches!(outcome, Outcome::NeedsCustomerInfo { .. }) {
                    for customer in [&current.sender_id, &current.receiver_id]
                        .into_iter()
                        .flatten()
                    {
                        crate::kyc::callbacks::customer_changed(anchor, customer).await;
                    }
                }
                return Ok(next);
            }
            Ok(RoundWritten::TransactionChanged) => continue,
            Ok(RoundWritten::LeaseLost) => {
                tracing::warn!(transaction = %id, "another executor took this payout round over; its outcome is left to it");
                return Err(Ended::LeaseLost);
            }
            Err(e) => return Err(Ended::Failed(e.to_string())),
        }
    }
    Err(Ended::Failed("the transaction kept changing".into()))
}

/// A payout outcome reported from outside the executor (the operator, or a business server
/// reporting through the operator API): for a submitted payout (`pending_external`), or a
/// round that is held or waiting to be retried. Returns the transaction as it now is.
pub async fn report(
    anchor: &AppState,
    id: &str,
    outcome: &Outcome,
    actor: &str,
) -> Result<TransactionRow, Ended> {
    let refused = |m: String| Err(Ended::Refused(m));
    let Some(t) = anchor
        .store
        .transaction(id)
        .await
        .map_err(|e| Ended::Failed(e.to_string()))?
    else {
        return refused(format!("transaction not found: {id}"));
    };
    match t.status() {
        Status::PendingExternal => {
            let (to, reason) = target(outcome);
            let updated = anchor
                .store
                .transition(
                    id,
                    to,
                    actor,
                    Some(&reason),
                    |row| edit(outcome, row),
                    |row| transaction_body(row).to_string(),
                )
                .await
                .map_err(|e| match e {
                    crate::store::TransitionError::Illegal(e) => Ended::Refused(e.to_string()),
                    other => Ended::Failed(other.to_string()),
                })?;
            anchor.outbox_wake.notify_one();
            if to == Status::PendingReceiver {
                anchor.payout_wake.notify_one();
            }
            Ok(updated)
        }
        Status::PendingReceiver => {
            let payout = anchor
                .store
                .payout(id)
                .await
                .map_err(|e| Ended::Failed(e.to_string()))?;
            match payout {
                Some(p) if p.state == "held" || p.state == "waiting" => {
                    end_with(anchor, &p, &t, outcome, actor).await
                }
                Some(p) if p.state == "executing" || p.state == "claimed" => refused(
                    "an executor is paying it out now; report again once its round ends".into(),
                ),
                _ => refused(
                    "no payout round is held or under way for it; the executor pays it out".into(),
                ),
            }
        }
        other => refused(format!(
            "the transaction is {other}; no payout is under way"
        )),
    }
}

/// Marks the fields the rails name as rejected (built-in KYC), so SEP-12 asks for them and
/// the transaction resumes once the customer is ACCEPTED again.
async fn flag_customers(
    anchor: &AppState,
    t: &TransactionRow,
    sender_fields: &[(String, String)],
    receiver_fields: &[(String, String)],
) -> Result<(), String> {
    if anchor.config.kyc.business.is_some() {
        // The business server keeps the customers and asks for the fields itself.
        return Ok(());
    }
    for (customer, fields) in [
        (&t.sender_id, sender_fields),
        (&t.receiver_id, receiver_fields),
    ] {
        if let (Some(customer), false) = (customer, fields.is_empty()) {
            anchor
                .store
                .request_customer_fields(customer, fields)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// One poller pass: asks the rails about every `pending_external` payout and applies what
/// moved on. Returns how many changed.
pub async fn poll_due(anchor: &AppState) -> usize {
    let Some(rails) = &anchor.rails else { return 0 };
    let mut changed = 0;
    let pending = match anchor.store.pending_external(500).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read pending_external transactions");
            return 0;
        }
    };
    if pending.is_empty() {
        return 0;
    }
    let moved = match tokio::time::timeout(anchor.config.rails.timeout, rails.poll(&pending)).await
    {
        Ok(Ok(moved)) => moved,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the rails' poll failed");
            return 0;
        }
        Err(_) => {
            tracing::warn!("the rails' poll did not answer in time");
            return 0;
        }
    };
    for (id, outcome) in moved {
        if !pending.iter().any(|t| t.id == id) {
            tracing::warn!(transaction = %id, "the rails' poll named a transaction it was not asked about");
            continue;
        }
        let (to, reason) = target(&outcome);
        if to == Status::PendingExternal {
            continue;
        }
        let result = anchor
            .store
            .transition(
                &id,
                to,
                ACTOR,
                Some(&reason),
                |t| edit(&outcome, t),
                |t| transaction_body(t).to_string(),
            )
            .await;
        match result {
            Ok(_) => {
                changed += 1;
                if to == Status::PendingReceiver {
                    anchor.payout_wake.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(transaction = %id, error = %e, "cannot apply the rails' poll result")
            }
        }
    }
    if changed > 0 {
        anchor.outbox_wake.notify_one();
    }
    changed
}
