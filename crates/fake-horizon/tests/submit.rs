//! `POST /transactions`: envelopes built with stellar-xdr, posted with reqwest as a form, as a
//! client SDK does; the answers, the real hashes and what the payment streams then carry.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{account, muxed, open};
use fake_horizon::{FakeHorizon, TESTNET_PASSPHRASE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, BumpSequenceOp, DecoratedSignature,
    FeeBumpTransaction, FeeBumpTransactionEnvelope, FeeBumpTransactionExt,
    FeeBumpTransactionInnerTx, LedgerEntryChanges, Limits, Memo, MuxedAccount,
    MuxedAccountMed25519, Operation, OperationBody, OperationResult, OperationResultTr,
    PathPaymentStrictSendOp, PathPaymentStrictSendResult, PaymentOp, PaymentResult, Preconditions,
    PublicKey, ReadXdr, SequenceNumber, Signature, SignatureHint, TimeBounds, TimePoint,
    Transaction, TransactionEnvelope, TransactionExt, TransactionMeta, TransactionResult,
    TransactionResultResult, TransactionV0, TransactionV0Envelope, TransactionV0Ext,
    TransactionV1Envelope, Uint256, WriteXdr,
};

const ISSUER: u8 = 9;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key(n: u8) -> Uint256 {
    Uint256([n; 32])
}

fn usdc() -> Asset {
    Asset::CreditAlphanum4(AlphaNum4 {
        asset_code: AssetCode4(*b"USDC"),
        issuer: AccountId(PublicKey::PublicKeyTypeEd25519(key(ISSUER))),
    })
}

fn payment(to: MuxedAccount, amount: i64) -> Operation {
    Operation {
        source_account: None,
        body: OperationBody::Payment(PaymentOp {
            destination: to,
            asset: usdc(),
            amount,
        }),
    }
}

fn tx(source: u8, seq: i64, fee: u32, memo: Memo, ops: Vec<Operation>) -> Transaction {
    Transaction {
        source_account: MuxedAccount::Ed25519(key(source)),
        fee,
        seq_num: SequenceNumber(seq),
        cond: Preconditions::Time(TimeBounds {
            min_time: TimePoint(0),
            max_time: TimePoint(now() + 300),
        }),
        memo,
        operations: ops.try_into().unwrap(),
        ext: TransactionExt::V0,
    }
}

/// Not a real signature: the fake does not verify them.
fn signature(n: u8) -> DecoratedSignature {
    DecoratedSignature {
        hint: SignatureHint([n; 4]),
        signature: Signature(vec![n; 64].try_into().unwrap()),
    }
}

fn v1(tx: Transaction) -> TransactionEnvelope {
    TransactionEnvelope::Tx(TransactionV1Envelope {
        tx,
        signatures: vec![signature(1)].try_into().unwrap(),
    })
}

fn fee_bump(fee_source: MuxedAccount, fee: i64, inner: Transaction) -> TransactionEnvelope {
    TransactionEnvelope::TxFeeBump(FeeBumpTransactionEnvelope {
        tx: FeeBumpTransaction {
            fee_source,
            fee,
            inner_tx: FeeBumpTransactionInnerTx::Tx(TransactionV1Envelope {
                tx: inner,
                signatures: vec![signature(1)].try_into().unwrap(),
            }),
            ext: FeeBumpTransactionExt::V0,
        },
        signatures: vec![signature(2)].try_into().unwrap(),
    })
}

fn b64(envelope: &TransactionEnvelope) -> String {
    envelope.to_xdr_base64(Limits::none()).unwrap()
}

/// The hash, computed here independently of the fake: SHA-256 of the
/// `TransactionSignaturePayload`, i.e. the network id, the envelope type (`ENVELOPE_TYPE_TX` = 2,
/// `ENVELOPE_TYPE_TX_FEE_BUMP` = 5) as a big-endian int32, and the transaction's XDR.
fn expected_hash(passphrase: &str, envelope_type: u8, tx_xdr: &[u8]) -> String {
    let mut payload = Sha256::digest(passphrase.as_bytes()).to_vec();
    payload.extend_from_slice(&[0, 0, 0, envelope_type]);
    payload.extend_from_slice(tx_xdr);
    Sha256::digest(&payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tx_hash(tx: &Transaction) -> String {
    expected_hash(TESTNET_PASSPHRASE, 2, &tx.to_xdr(Limits::none()).unwrap())
}

async fn post(h: &FakeHorizon, envelope_b64: &str) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/transactions", h.url()))
        .form(&[("tx", envelope_b64)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, content_type, body)
}

fn payments_url(h: &FakeHorizon, account: &str) -> String {
    format!(
        "{}/accounts/{account}/payments?cursor=now&join=transactions&limit=200",
        h.url()
    )
}

#[tokio::test]
async fn a_payment_to_a_muxed_account_and_a_fee_bumped_path_payment() {
    let h = FakeHorizon::start().await;
    let (me, sender, sponsor) = (account(1), account(2), account(3));
    let mut stream = open(&payments_url(&h, &me)).await;
    stream.hello().await;

    // 1. A payment of 1.25 USDC with an id memo to me, muxed with id 42.
    let to = MuxedAccount::MuxedEd25519(MuxedAccountMed25519 {
        id: 42,
        ed25519: key(1),
    });
    let pay = tx(2, 1, 100, Memo::Id(7), vec![payment(to, 12_500_000)]);
    let hash = tx_hash(&pay);
    let envelope = b64(&v1(pay));
    let (status, content_type, body) = post(&h, &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/hal+json; charset=utf-8");
    assert_eq!(body["hash"], hash);
    assert_eq!(body["id"], hash);
    assert_eq!(body["successful"], true);
    assert_eq!(body["source_account"], sender);
    assert_eq!(body["source_account_sequence"], "1");
    assert_eq!(body["fee_account"], sender);
    assert_eq!(body["fee_charged"], "100");
    assert_eq!(body["max_fee"], "100");
    assert_eq!(body["operation_count"], 1);
    assert_eq!(body["envelope_xdr"], envelope);
    assert_eq!(body["memo_type"], "id");
    assert_eq!(body["memo"], "7");
    assert_eq!(
        body["signatures"],
        serde_json::json!([BASE64.encode([1u8; 64])])
    );
    assert_eq!(body["preconditions"]["timebounds"]["min_time"], "0");
    assert!(body["preconditions"]["timebounds"]["max_time"].is_string());
    assert!(body.get("fee_bump_transaction").is_none());
    assert_eq!(
        body["_links"]["self"]["href"],
        format!("{}/transactions/{hash}", h.url())
    );
    assert_eq!(body["_links"]["transaction"], body["_links"]["self"]);
    let ledger = body["ledger"].as_u64().unwrap();
    assert_eq!(
        body["paging_token"],
        ((ledger << 32) | (1 << 12)).to_string()
    );
    let result =
        TransactionResult::from_xdr_base64(body["result_xdr"].as_str().unwrap(), Limits::none())
            .unwrap();
    assert_eq!(result.fee_charged, 100);
    let TransactionResultResult::TxSuccess(ops) = &result.result else {
        panic!("{result:?}")
    };
    assert!(matches!(
        ops.as_slice(),
        [OperationResult::OpInner(OperationResultTr::Payment(
            PaymentResult::Success
        ))]
    ));
    TransactionMeta::from_xdr_base64(body["result_meta_xdr"].as_str().unwrap(), Limits::none())
        .unwrap();
    LedgerEntryChanges::from_xdr_base64(body["fee_meta_xdr"].as_str().unwrap(), Limits::none())
        .unwrap();

    let (id, r) = stream.record().await;
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["type"], "payment");
    assert_eq!(r["transaction_hash"], hash);
    assert_eq!(r["from"], sender);
    assert_eq!(r["to"], me);
    assert_eq!(r["to_muxed"], muxed(1, 42));
    assert_eq!(r["to_muxed_id"], "42");
    assert_eq!(r["asset_type"], "credit_alphanum4");
    assert_eq!(r["asset_code"], "USDC");
    assert_eq!(r["asset_issuer"], account(ISSUER));
    assert_eq!(r["amount"], "1.2500000");
    assert_eq!(r["transaction"]["hash"], hash);
    assert_eq!(r["transaction"]["memo_type"], "id");
    assert_eq!(r["transaction"]["memo"], "7");
    assert_eq!(r["transaction"]["envelope_xdr"], envelope);
    assert_eq!(r["transaction"]["ledger"], ledger);
    assert_eq!(h.submitted(), vec![hash.clone()]);

    // Submitting it again changes nothing and answers the stored transaction.
    let latest = h.latest_token();
    let (status, _, again) = post(&h, &envelope).await;
    assert_eq!(status, 200);
    assert_eq!(again, body);
    assert_eq!(h.latest_token(), latest);
    assert_eq!(h.submitted(), vec![hash.clone()]);
    stream.quiet(100).await;

    // 2. A fee bump (paid by the sponsor) of a strict-send path payment: 5 XLM for at least
    // 4.5 USDC, which the fake delivers exactly.
    let path_payment = Operation {
        source_account: Some(MuxedAccount::MuxedEd25519(MuxedAccountMed25519 {
            id: 9,
            ed25519: key(2),
        })),
        body: OperationBody::PathPaymentStrictSend(PathPaymentStrictSendOp {
            send_asset: Asset::Native,
            send_amount: 50_000_000,
            destination: MuxedAccount::Ed25519(key(1)),
            dest_asset: usdc(),
            dest_min: 45_000_000,
            path: vec![].try_into().unwrap(),
        }),
    };
    let inner = tx(
        2,
        2,
        100,
        Memo::Text("inner".try_into().unwrap()),
        vec![path_payment],
    );
    let inner_hash = tx_hash(&inner);
    let bump = fee_bump(MuxedAccount::Ed25519(key(3)), 200, inner.clone());
    let TransactionEnvelope::TxFeeBump(bump_envelope) = &bump else {
        unreachable!()
    };
    let outer_hash = expected_hash(
        TESTNET_PASSPHRASE,
        5,
        &bump_envelope.tx.to_xdr(Limits::none()).unwrap(),
    );
    let (status, _, body) = post(&h, &b64(&bump)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash"], outer_hash);
    assert_eq!(body["fee_account"], sponsor);
    assert_eq!(body["source_account"], sender);
    assert_eq!(body["fee_charged"], "200");
    assert_eq!(body["max_fee"], "200");
    assert_eq!(body["memo_type"], "text");
    assert_eq!(body["memo"], "inner");
    assert_eq!(body["memo_bytes"], BASE64.encode("inner"));
    assert_eq!(body["fee_bump_transaction"]["hash"], outer_hash);
    assert_eq!(
        body["signatures"],
        serde_json::json!([BASE64.encode([2u8; 64])])
    );
    assert_eq!(body["inner_transaction"]["hash"], inner_hash);
    assert_eq!(body["inner_transaction"]["max_fee"], "100");
    assert_eq!(
        body["inner_transaction"]["signatures"],
        serde_json::json!([BASE64.encode([1u8; 64])])
    );
    let result =
        TransactionResult::from_xdr_base64(body["result_xdr"].as_str().unwrap(), Limits::none())
            .unwrap();
    let TransactionResultResult::TxFeeBumpInnerSuccess(pair) = &result.result else {
        panic!("{result:?}")
    };
    assert_eq!(
        pair.transaction_hash
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        inner_hash
    );
    let stellar_xdr::InnerTransactionResultResult::TxSuccess(ops) = &pair.result.result else {
        panic!("{pair:?}")
    };
    let [
        OperationResult::OpInner(OperationResultTr::PathPaymentStrictSend(
            PathPaymentStrictSendResult::Success(success),
        )),
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert_eq!(success.last.amount, 45_000_000);

    let (_, r) = stream.record().await;
    assert_eq!(r["type"], "path_payment_strict_send");
    assert_eq!(r["transaction_hash"], outer_hash);
    assert_eq!(r["source_account"], sender);
    assert_eq!(r["source_account_muxed"], muxed(2, 9));
    assert_eq!(r["from_muxed_id"], "9");
    assert_eq!(r["to"], me);
    assert!(r.get("to_muxed").is_none());
    assert_eq!(r["amount"], "4.5000000");
    assert_eq!(r["destination_min"], "4.5000000");
    assert_eq!(r["source_amount"], "5.0000000");
    assert_eq!(r["source_asset_type"], "native");
    assert_eq!(r["transaction"]["hash"], outer_hash);
    assert_eq!(r["transaction"]["inner_transaction"]["hash"], inner_hash);
    assert_eq!(h.submitted(), vec![hash.clone(), outer_hash.clone()]);

    // The inner transaction submitted on its own is found by its hash, as Horizon finds it.
    let (status, _, body) = post(&h, &b64(&v1(inner))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash"], inner_hash);
    assert_eq!(body["id"], inner_hash);
    assert_eq!(body["fee_bump_transaction"]["hash"], outer_hash);
    assert_eq!(
        body["signatures"],
        serde_json::json!([BASE64.encode([1u8; 64])])
    );
    assert_eq!(h.submitted().len(), 2);
    stream.quiet(100).await;

    // Every submission is logged.
    let posts: Vec<u16> = h
        .requests()
        .iter()
        .filter(|r| r.path == "/transactions")
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, vec![200, 200, 200, 200]);
}

fn problem_codes(body: &Value) -> (&str, Option<&str>, Vec<&str>) {
    let codes = &body["extras"]["result_codes"];
    (
        codes["transaction"].as_str().unwrap(),
        codes.get("inner_transaction").map(|c| c.as_str().unwrap()),
        codes
            .get("operations")
            .map(|ops| {
                ops.as_array()
                    .unwrap()
                    .iter()
                    .map(|op| op.as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn refusals_as_horizon_words_them() {
    let h = FakeHorizon::start().await;
    let me = MuxedAccount::Ed25519(key(1));
    let mut stream = open(&payments_url(&h, &account(1))).await;
    stream.hello().await;

    // An operation the fake does not support fails the transaction.
    let bump_seq = Operation {
        source_account: None,
        body: OperationBody::BumpSequence(BumpSequenceOp {
            bump_to: SequenceNumber(10),
        }),
    };
    let unsupported = v1(tx(
        2,
        1,
        200,
        Memo::None,
        vec![payment(me.clone(), 1), bump_seq.clone()],
    ));
    let (status, content_type, body) = post(&h, &b64(&unsupported)).await;
    assert_eq!(status, 400);
    assert_eq!(content_type, "application/problem+json; charset=utf-8");
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/transaction_failed"
    );
    assert_eq!(body["title"], "Transaction Failed");
    assert_eq!(body["status"], 400);
    assert_eq!(
        body["detail"],
        "The transaction failed when submitted to the stellar network. The \
         `extras.result_codes` field on this response contains further details.  Descriptions \
         of each code can be found at: \
         https://developers.stellar.org/api/errors/http-status-codes/horizon-specific/transaction-failed/"
    );
    assert_eq!(body["extras"]["envelope_xdr"], b64(&unsupported));
    assert_eq!(
        problem_codes(&body),
        ("tx_failed", None, vec!["op_success", "op_not_supported"])
    );
    let result = TransactionResult::from_xdr_base64(
        body["extras"]["result_xdr"].as_str().unwrap(),
        Limits::none(),
    )
    .unwrap();
    let TransactionResultResult::TxFailed(ops) = &result.result else {
        panic!("{result:?}")
    };
    assert!(matches!(ops[1], OperationResult::OpNotSupported));

    // In a fee bump, the inner transaction fails.
    let bumped = fee_bump(
        MuxedAccount::Ed25519(key(3)),
        400,
        tx(2, 1, 100, Memo::None, vec![bump_seq]),
    );
    let (status, _, body) = post(&h, &b64(&bumped)).await;
    assert_eq!(status, 400);
    assert_eq!(
        problem_codes(&body),
        (
            "tx_fee_bump_inner_failed",
            Some("tx_failed"),
            vec!["op_not_supported"]
        )
    );

    // A malformed amount, fees below the minimum, expired time bounds, no operation.
    let cases = [
        (
            v1(tx(2, 1, 100, Memo::None, vec![payment(me.clone(), 0)])),
            ("tx_failed", None, vec!["op_malformed"]),
        ),
        (
            v1(tx(2, 1, 99, Memo::None, vec![payment(me.clone(), 1)])),
            ("tx_insufficient_fee", None, vec![]),
        ),
        (
            fee_bump(
                MuxedAccount::Ed25519(key(3)),
                199,
                tx(2, 1, 100, Memo::None, vec![payment(me.clone(), 1)]),
            ),
            ("tx_insufficient_fee", None, vec![]),
        ),
        (
            v1(Transaction {
                cond: Preconditions::Time(TimeBounds {
                    min_time: TimePoint(0),
                    max_time: TimePoint(now() - 10),
                }),
                ..tx(2, 1, 100, Memo::None, vec![payment(me.clone(), 1)])
            }),
            ("tx_too_late", None, vec![]),
        ),
        (
            v1(tx(2, 1, 100, Memo::None, vec![])),
            ("tx_missing_operation", None, vec![]),
        ),
        (
            v1(tx(2, -1, 100, Memo::None, vec![payment(me.clone(), 1)])),
            ("tx_bad_seq", None, vec![]),
        ),
    ];
    for (envelope, expected) in cases {
        let (status, _, body) = post(&h, &b64(&envelope)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem_codes(&body), expected, "{body}");
    }

    // Sequence numbers: after 5, only 6.
    let (status, _, _) = post(
        &h,
        &b64(&v1(tx(2, 5, 100, Memo::None, vec![payment(me.clone(), 1)]))),
    )
    .await;
    assert_eq!(status, 200);
    for seq in [5, 7] {
        let (status, _, body) = post(
            &h,
            &b64(&v1(tx(
                2,
                seq,
                100,
                Memo::Id(1),
                vec![payment(me.clone(), 1)],
            ))),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(problem_codes(&body).0, "tx_bad_seq");
    }
    let (status, _, _) = post(
        &h,
        &b64(&v1(tx(2, 6, 100, Memo::None, vec![payment(me.clone(), 2)]))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h.submitted().len(), 2);
    stream.record().await;
    stream.record().await;
    stream.quiet(100).await;

    // Not an envelope.
    let (status, _, body) = post(&h, "bm90IFhEUg==").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/transaction_malformed"
    );
    assert_eq!(body["title"], "Transaction Malformed");
    assert_eq!(body["extras"]["envelope_xdr"], "bm90IFhEUg==");

    // Horizon takes forms only.
    let envelope = b64(&v1(tx(4, 1, 100, Memo::None, vec![payment(me.clone(), 1)])));
    let response = reqwest::Client::new()
        .post(format!("{}/transactions", h.url()))
        .json(&serde_json::json!({ "tx": envelope }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://stellar.org/horizon-errors/unsupported_media_type"
    );

    // Downtime and injected failures apply.
    h.set_down(true);
    assert_eq!(post(&h, &envelope).await.0, 503);
    h.set_down(false);
    h.fail_next(1, 504, None);
    let (status, _, body) = post(&h, &envelope).await;
    assert_eq!(status, 504);
    assert_eq!(body["type"], "https://stellar.org/horizon-errors/timeout");
    assert_eq!(h.submitted().len(), 2);
    let last: Vec<u16> = h
        .requests()
        .iter()
        .rev()
        .take(3)
        .map(|r| r.status)
        .collect();
    assert_eq!(last, vec![504, 503, 415]);

    // A multipart form, and the `tx` query parameter, are read too.
    let form = reqwest::multipart::Form::new().text("tx", envelope.clone());
    let response = reqwest::Client::new()
        .post(format!("{}/transactions", h.url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let next = b64(&v1(tx(4, 2, 100, Memo::None, vec![payment(me.clone(), 1)])));
    let response = reqwest::Client::new()
        .post(format!("{}/transactions", h.url()))
        .query(&[("tx", next.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(h.submitted().len(), 4);
}

#[tokio::test]
async fn the_network_passphrase_and_v0_envelopes() {
    let h = FakeHorizon::start().await;
    let public = "Public Global Stellar Network ; September 2015";
    h.set_network_passphrase(public);
    let v0 = TransactionV0 {
        source_account_ed25519: key(2),
        fee: 100,
        seq_num: SequenceNumber(1),
        time_bounds: None,
        memo: Memo::Hash(stellar_xdr::Hash([5; 32])),
        operations: vec![payment(MuxedAccount::Ed25519(key(1)), 10)]
            .try_into()
            .unwrap(),
        ext: TransactionV0Ext::V0,
    };
    // Stellar-core hashes a v0 transaction as the v1 transaction it converts to.
    let as_v1 = Transaction {
        source_account: MuxedAccount::Ed25519(key(2)),
        fee: 100,
        seq_num: SequenceNumber(1),
        cond: Preconditions::None,
        memo: v0.memo.clone(),
        operations: v0.operations.clone(),
        ext: TransactionExt::V0,
    };
    let expected = expected_hash(public, 2, &as_v1.to_xdr(Limits::none()).unwrap());
    let envelope = TransactionEnvelope::TxV0(TransactionV0Envelope {
        tx: v0,
        signatures: vec![signature(1)].try_into().unwrap(),
    });
    let (status, _, body) = post(&h, &b64(&envelope)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash"], expected);
    assert_eq!(body["memo_type"], "hash");
    assert_eq!(body["memo"], BASE64.encode([5u8; 32]));
    assert!(body.get("preconditions").is_none());
    assert_eq!(h.submitted(), vec![expected]);
}

#[tokio::test]
async fn v2_preconditions_are_rendered_and_checked() {
    use stellar_xdr::{Duration, LedgerBounds, PreconditionsV2, SignerKey};

    let h = FakeHorizon::start().await;
    let with = |ledger_bounds: LedgerBounds| {
        v1(Transaction {
            cond: Preconditions::V2(PreconditionsV2 {
                time_bounds: Some(TimeBounds {
                    min_time: TimePoint(0),
                    max_time: TimePoint(0),
                }),
                ledger_bounds: Some(ledger_bounds),
                min_seq_num: None,
                min_seq_age: Duration(0),
                min_seq_ledger_gap: 3,
                extra_signers: vec![SignerKey::Ed25519(key(5))].try_into().unwrap(),
            }),
            ..tx(
                2,
                1,
                100,
                Memo::None,
                vec![payment(MuxedAccount::Ed25519(key(1)), 1)],
            )
        })
    };
    // The next ledger is the first: a lower bound above it is too early.
    let (status, _, body) = post(
        &h,
        &b64(&with(LedgerBounds {
            min_ledger: fake_horizon::FIRST_LEDGER + 1,
            max_ledger: 0,
        })),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem_codes(&body).0, "tx_too_early");

    let (status, _, body) = post(
        &h,
        &b64(&with(LedgerBounds {
            min_ledger: 1,
            max_ledger: 0,
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["preconditions"],
        serde_json::json!({
            "timebounds": { "min_time": "0" },
            "ledgerbounds": { "min_ledger": 1 },
            "min_account_sequence_ledger_gap": 3,
            "extra_signers": [account(5)],
        })
    );
}
