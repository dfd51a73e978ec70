//! Micro-benchmarks of the pure hot paths of SEP-31 and the payment watcher (no HTTP, no
//! database): drawing a transaction's memo, the watcher's matching of a payment to the
//! transaction its memo names, the fee of a transaction, and a transaction as
//! `GET /transactions/:id` writes it. Each iteration is one operation, so criterion reports
//! operations per second as elements/s. The SEP-10 challenge and JWT paths are in
//! `benches/sep10.rs`.
//!
//! Run with `cargo bench -p capstan --bench hot_paths`. The figures are measurements for
//! BENCHMARKS.md, never assertions.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use capstan::config::{ReceiveAsset, ReceiveSettings, ShortPayments};
use capstan::sep31::amounts::{fee, parse_amount};
use capstan::sep31::integration::{ConfiguredFees, Fees};
use capstan::sep31::status::Status;
use capstan::sep31::transactions::{new_memo, transaction_body};
use capstan::store::TransactionRow;
use capstan::watcher::matching::{Decision, Reason, decide, payment_memo};
use capstan::watcher::source::IncomingPayment;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use rust_decimal::Decimal;
use serde_json::Value;
use stellar::Keypair;

const MEMO: &str = "4611686018427387904";

fn key(byte: u8) -> String {
    Keypair::from_seed_bytes([byte; 32])
        .public_key()
        .to_string()
}

/// A `pending_sender` transaction as the store reads it, with the memo [`MEMO`].
fn transaction() -> TransactionRow {
    TransactionRow {
        id: "0b9f3c52-6a1e-4a6f-9d8e-3f1c2b7a9e10".into(),
        sending_anchor: key(1),
        status: Status::PendingSender.as_str().into(),
        status_message: None,
        asset_code: "USDC".into(),
        asset_issuer: key(2),
        funding_method: "SEPA".into(),
        amount_in: "100".into(),
        amount_fee: "1.5".into(),
        amount_out: "98.5".into(),
        fee_details: r#"[{"name":"fixed fee","amount":"1"},{"name":"percentage fee","description":"0.5% of the amount","amount":"0.5"}]"#.into(),
        sender_id: Some("6f1d0c8e-2b7a-4c3e-9a51-0d2f4b8c7e61".into()),
        receiver_id: Some("a3e4b5c6-7d8e-4f90-8a1b-2c3d4e5f6071".into()),
        stellar_account_id: Some(key(3)),
        stellar_memo_type: Some("id".into()),
        stellar_memo: Some(MEMO.into()),
        refund_memo: None,
        refund_memo_type: None,
        fields: "{}".into(),
        required_info_message: None,
        required_info_updates: None,
        stellar_transaction_id: None,
        external_transaction_id: None,
        refunds: None,
        paid: false,
        version: 0,
        callback_url: None,
        started_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        completed_at: None,
        expires_at: Some(1_700_086_400),
        conversion: None,
    }
}

/// A payment of `amount` USDC to the transaction's account with id memo `memo`.
fn payment(row: &TransactionRow, memo: &str, amount: Decimal) -> IncomingPayment {
    IncomingPayment {
        id: "214748364800000001".into(),
        cursor: "214748364800000001".into(),
        stellar_transaction_id: "9f".repeat(32),
        kind: "payment".into(),
        from: key(4),
        to: row.stellar_account_id.clone().unwrap(),
        to_muxed_id: None,
        asset_code: row.asset_code.clone(),
        asset_issuer: row.asset_issuer.clone(),
        amount,
        memo_type: "id".into(),
        memo: Some(memo.into()),
        paid_at: 1_700_000_100,
    }
}

fn memo(c: &mut Criterion) {
    let mut group = c.benchmark_group("sep31_memo");
    group.throughput(Throughput::Elements(1));
    // 8 bytes from the OS RNG, written in decimal.
    group.bench_function("new_memo", |b| b.iter(new_memo));
    group.finish();
}

fn matching(c: &mut Criterion) {
    let row = transaction();
    let exact = payment(&row, MEMO, Decimal::new(100, 0));
    // A short payment: every check passes but the last, and a reason is written.
    let short = payment(&row, MEMO, Decimal::new(995, 1));
    assert_eq!(
        decide(&exact, Some(&row), ShortPayments::Hold),
        Decision::Fund {
            amount_in: Decimal::new(100, 0)
        }
    );
    assert!(matches!(
        decide(&short, Some(&row), ShortPayments::Hold),
        Decision::Hold {
            reason: Reason::ShortPayment,
            ..
        }
    ));

    let mut group = c.benchmark_group("watcher_match");
    group.throughput(Throughput::Elements(1));
    // The memo a payment names its transaction by (what the watcher looks the row up with).
    group.bench_function("payment_memo", |b| {
        b.iter(|| payment_memo(black_box(&exact)))
    });
    group.bench_function("decide_fund", |b| {
        b.iter(|| {
            decide(
                black_box(&exact),
                Some(black_box(&row)),
                ShortPayments::Hold,
            )
        })
    });
    group.bench_function("decide_hold_short", |b| {
        b.iter(|| {
            decide(
                black_box(&short),
                Some(black_box(&row)),
                ShortPayments::Hold,
            )
        })
    });
    group.bench_function("decide_unknown_memo", |b| {
        b.iter(|| decide(black_box(&exact), None, ShortPayments::Hold))
    });
    group.finish();
}

fn fees(c: &mut Criterion) {
    let settings = ReceiveSettings {
        funding_methods: vec!["SEPA".into()],
        min_amount: None,
        max_amount: None,
        fee_fixed: Decimal::ONE,
        fee_percent: Decimal::new(5, 1),
        sender_type: Some("sep31-sender".into()),
        receiver_type: Some("sep31-receiver".into()),
        fields: BTreeMap::new(),
    };
    let asset = ReceiveAsset {
        code: "USDC".into(),
        issuer: Keypair::from_seed_bytes([2; 32]).public_key(),
        distribution_account: Keypair::from_seed_bytes([3; 32]).public_key(),
        settings: settings.clone(),
    };
    let amount = Decimal::new(1_234_567_891, 7);
    let fixed = ConfiguredFees
        .fee(&asset, amount, "SEPA")
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!(fixed.total, fee(&settings, amount));

    let mut group = c.benchmark_group("sep31_fee");
    group.throughput(Throughput::Elements(1));
    // Fixed plus percent, rounded to the stroop.
    group.bench_function("fee", |b| {
        b.iter(|| fee(black_box(&settings), black_box(amount)))
    });
    // What POST /transactions calls: the configured fee with its two parts and their JSON.
    group.bench_function("configured_fee_with_details", |b| {
        b.iter(|| {
            let fee = ConfiguredFees
                .fee(black_box(&asset), black_box(amount), "SEPA")
                .now_or_never()
                .unwrap()
                .unwrap();
            fee.details_json()
        })
    });
    // Reading the amount a sending anchor sends.
    let sent = Value::String("123.4567891".into());
    group.bench_function("parse_amount", |b| {
        b.iter(|| parse_amount(black_box(&sent), None).unwrap())
    });
    group.finish();
}

fn serialise(c: &mut Criterion) {
    let row = transaction();
    let body = serde_json::to_value(transaction_body(&row)).unwrap();
    assert_eq!(body["transaction"]["stellar_memo"], MEMO);
    assert_eq!(
        body["transaction"]["fee_details"]["details"][1]["amount"],
        "0.5"
    );

    let mut group = c.benchmark_group("sep31_transaction_body");
    group.throughput(Throughput::Elements(1));
    // The body of GET /transactions/:id (and of its callbacks), borrowing the row.
    group.bench_function("body", |b| b.iter(|| transaction_body(black_box(&row))));
    // ... and written out as the response body.
    group.bench_function("body_to_bytes", |b| {
        b.iter(|| serde_json::to_vec(&transaction_body(black_box(&row))).unwrap())
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = memo, matching, fees, serialise
}
criterion_main!(benches);
