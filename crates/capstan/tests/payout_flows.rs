//! Payouts end to end on the running `capstan serve` binary, with a fake Horizon serving the
//! network. A sending anchor discovers the anchor from stellar.toml, logs in with SEP-10,
//! registers its sender and receiver with SEP-12, creates a SEP-31 transaction with a
//! callback URL and pays it with a signed Stellar transaction submitted to Horizon. The
//! watcher streams the payment, the executor pays the receiver out through the simulated
//! rails (and the poller follows submitted payouts up), and every status change reaches the
//! callback URL as a POST signed with the stellar.toml SIGNING_KEY. One test per flow:
//! paid at once, submitted then polled, a customer correction, a transaction correction, a
//! refusal (error) and a payment sent back (refunded). On SQLite, and on PostgreSQL when
//! CAPSTAN_TEST_POSTGRES_URL is set.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::callbacks::{Recorder, verified};
use common::process::{Keep, Process, capstan_in, free_port};
use common::{json_of, on_both_backends};
use fake_horizon::FakeHorizon;
use serde_json::{Value, json};
use stellar::{Keypair, Network, PublicKey};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, Limits, Memo, MuxedAccount, Operation, OperationBody,
    PaymentOp, Preconditions, SequenceNumber, TimeBounds, TimePoint, Transaction,
    TransactionEnvelope, TransactionExt, TransactionV1Envelope, Uint256, WriteXdr,
};

const ADMIN_KEY: &str = "payout-flows-admin-key-0123";
/// The longest any step may take.
const WITHIN: Duration = Duration::from_secs(20);
/// How long the callback URL is watched for a callback that should not come.
const QUIET: Duration = Duration::from_secs(1);

/// The amounts that make the simulated rails ask for corrections, refuse, or send back.
const CUSTOMER_INFO_AMOUNT: &str = "13.13";
const TRANSACTION_INFO_AMOUNT: &str = "14.14";
const ERROR_AMOUNT: &str = "66.6";
const REFUND_AMOUNT: &str = "77.7";

on_both_backends! {
    a_payment_is_paid_out_at_once => a_payment_is_paid_out_at_once_sqlite, a_payment_is_paid_out_at_once_postgres;
    a_submitted_payout_completes_after_a_poll => a_submitted_payout_completes_after_a_poll_sqlite, a_submitted_payout_completes_after_a_poll_postgres;
    a_customer_correction_leads_back_to_completed => a_customer_correction_leads_back_to_completed_sqlite, a_customer_correction_leads_back_to_completed_postgres;
    a_transaction_correction_leads_back_to_completed => a_transaction_correction_leads_back_to_completed_sqlite, a_transaction_correction_leads_back_to_completed_postgres;
    a_refused_payout_ends_in_error => a_refused_payout_ends_in_error_sqlite, a_refused_payout_ends_in_error_postgres;
    a_payment_the_rails_send_back_is_refunded => a_payment_the_rails_send_back_is_refunded_sqlite, a_payment_the_rails_send_back_is_refunded_postgres;
}

// ---- the anchor: `capstan serve` as a child process ---------------------------------------

/// The receiving anchor under test: USDC (fixed fee 1) received at a fresh distribution
/// account, the watcher on a fake Horizon, the simulated rails with every trigger amount,
/// SEP-12's default sep31-sender and sep31-receiver types with automatic review, and the
/// admin API. Its signing key and endpoints are learnt from stellar.toml, as a client does.
struct Anchor {
    served: Process,
    horizon: FakeHorizon,
    http: reqwest::Client,
    admin_url: String,
    issuer: String,
    distribution: String,
    signing_key: PublicKey,
    network: Network,
    web_auth: String,
    kyc: String,
    sep31: String,
    _dir: tempfile::TempDir,
}

impl Anchor {
    /// `simulated`: the rails' mode, "instant" or "external". `db`: a PostgreSQL URL, or a
    /// SQLite file in the temporary directory.
    async fn start(db: Option<String>, simulated: &str) -> Anchor {
        let dir = tempfile::tempdir().unwrap();
        let horizon = FakeHorizon::start().await;
        let issuer = Keypair::random().public_key().to_string();
        let distribution = Keypair::random().public_key().to_string();
        let (port, admin_port) = (free_port(), free_port());
        let db = db.unwrap_or_else(|| "sqlite://capstan.db".to_owned());
        // No signing seed and no JWT secret: the anchor generates and keeps them. The watcher
        // reads the fake Horizon from its first record, so no payment can slip in before the
        // stream is open. The executor is woken by each payment; the poller runs every second.
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}\"\n\n\
             [stellar]\nnetwork = \"testnet\"\nhorizon_url = \"{horizon}\"\n\n\
             [database]\nurl = \"{db}\"\n\n\
             [kyc]\nreview = \"auto\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\napi_key = \"{ADMIN_KEY}\"\n\n\
             [watcher]\nenabled = true\nstart = \"0\"\nmax_backoff_secs = 1\n\n\
             [rails]\nkind = \"simulated\"\nenabled = true\nsimulated = \"{simulated}\"\n\
             execute_interval_secs = 1\npoll_interval_secs = 1\n\
             customer_info_amount = \"{CUSTOMER_INFO_AMOUNT}\"\n\
             transaction_info_amount = \"{TRANSACTION_INFO_AMOUNT}\"\n\
             error_amount = \"{ERROR_AMOUNT}\"\nrefund_amount = \"{REFUND_AMOUNT}\"\n\n\
             [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\n\
             [sep31.assets.USDC]\nfee_fixed = \"1\"\n",
            horizon = horizon.url(),
        );
        std::fs::write(dir.path().join("anchor.toml"), config).unwrap();
        let mut cmd = capstan_in(dir.path());
        cmd.args(["--config", "anchor.toml", "serve"]);
        let mut served = Process::spawn(cmd, Keep::Stderr);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        served.wait_healthy(&url).await;

        // Discovery: everything a client needs comes from stellar.toml.
        let text = http
            .get(format!("{url}/.well-known/stellar.toml"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let toml: toml::Table = text.parse().unwrap();
        let entry = |key: &str| {
            toml[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in stellar.toml:\n{text}"))
                .to_owned()
        };
        let signing_key = PublicKey::from_strkey(&entry("SIGNING_KEY")).unwrap();
        let network = Network::from_passphrase(entry("NETWORK_PASSPHRASE"));
        assert_eq!(
            network.passphrase(),
            fake_horizon::TESTNET_PASSPHRASE,
            "the fake Horizon hashes with the anchor's network"
        );
        let (web_auth, kyc, sep31) = (
            entry("WEB_AUTH_ENDPOINT"),
            entry("KYC_SERVER"),
            entry("DIRECT_PAYMENT_SERVER"),
        );
        assert_eq!(sep31, format!("{url}/sep31"));
        Anchor {
            served,
            horizon,
            http,
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            issuer,
            distribution,
            signing_key,
            network,
            web_auth,
            kyc,
            sep31,
            _dir: dir,
        }
    }

    async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.admin_url))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The operator's view of a transaction: its events and its payout round.
    async fn detail(&self, id: &str) -> Value {
        self.admin_get(&format!("/admin/transactions/{id}")).await
    }

    /// (to, actor) of each event of the transaction, in order.
    async fn trail(&self, id: &str) -> Vec<(String, String)> {
        self.detail(id).await["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["to"].as_str().unwrap().to_owned(),
                    e["actor"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

fn step(to: &str, actor: &str) -> (String, String) {
    (to.to_owned(), actor.to_owned())
}

// ---- the sending anchor ------------------------------------------------------------------

/// A sending anchor logged in with SEP-10 (a whole-account token: it files its sender and
/// receiver under memos of its own choosing).
struct SendingAnchor<'a> {
    anchor: &'a Anchor,
    key: Keypair,
    token: String,
    /// The sequence number of its next Stellar transaction.
    sequence: AtomicI64,
}

/// A transaction as the POST answered it.
struct Created {
    id: String,
    memo: u64,
}

/// The callback URL of one transaction, and what it heard.
struct Wallet {
    recorder: Recorder,
    url: String,
}

impl<'a> SendingAnchor<'a> {
    async fn login(anchor: &'a Anchor) -> SendingAnchor<'a> {
        let key = Keypair::random();
        let account = key.public_key().to_string();
        let (status, challenge) = json_of(
            anchor
                .http
                .get(&anchor.web_auth)
                .query(&[("account", account.as_str())])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{challenge}");
        assert_eq!(challenge["network_passphrase"], anchor.network.passphrase());
        let signed = stellar::sep10::sign_challenge(
            challenge["transaction"].as_str().unwrap(),
            &anchor.network,
            &[&key],
        )
        .unwrap();
        let (status, token) = json_of(
            anchor
                .http
                .post(&anchor.web_auth)
                .json(&json!({ "transaction": signed }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{token}");
        SendingAnchor {
            anchor,
            key,
            token: token["token"].as_str().unwrap().to_owned(),
            sequence: AtomicI64::new(1),
        }
    }

    fn account(&self) -> String {
        self.key.public_key().to_string()
    }

    fn actor(&self) -> String {
        format!("sending_anchor:{}", self.account())
    }

    // -- SEP-12 --

    async fn put_customer(&self, body: Value) -> String {
        let response = self
            .anchor
            .http
            .put(format!("{}/customer", self.anchor.kyc))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, put) = json_of(response).await;
        assert_eq!(status, 202, "PUT /customer {body}: {put}");
        put["id"].as_str().unwrap().to_owned()
    }

    async fn customer(&self, id: &str, kind: &str) -> Value {
        let response = self
            .anchor
            .http
            .get(format!("{}/customer", self.anchor.kyc))
            .bearer_auth(&self.token)
            .query(&[("id", id), ("type", kind)])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The sender (memo 1) and the receiver (memo 2), both ACCEPTED: (sender, receiver).
    async fn register_customers(&self) -> (String, String) {
        let sender = self
            .put_customer(json!({
                "memo": "1",
                "type": "sep31-sender",
                "first_name": "Ana",
                "last_name": "Silva",
                "email_address": "ana@example.com",
            }))
            .await;
        let receiver = self
            .put_customer(json!({
                "memo": "2",
                "type": "sep31-receiver",
                "first_name": "Bruno",
                "last_name": "Costa",
                "email_address": "bruno@example.com",
                "bank_account_number": "12345678",
                "bank_number": "021000021",
            }))
            .await;
        assert_ne!(sender, receiver);
        for (id, kind) in [(&sender, "sep31-sender"), (&receiver, "sep31-receiver")] {
            let seen = self.customer(id, kind).await;
            assert_eq!(seen["status"], "ACCEPTED", "{kind}: {seen}");
        }
        (sender, receiver)
    }

    // -- SEP-31 --

    /// POST /transactions for `amount` USDC: pending_sender, to be paid to the distribution
    /// account with an id memo.
    async fn create(&self, amount: &str, sender: &str, receiver: &str) -> Created {
        let response = self
            .anchor
            .http
            .post(format!("{}/transactions", self.anchor.sep31))
            .bearer_auth(&self.token)
            .json(&json!({
                "amount": amount,
                "asset_code": "USDC",
                "asset_issuer": self.anchor.issuer,
                "funding_method": "SEPA",
                "sender_id": sender,
                "receiver_id": receiver,
            }))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body["stellar_account_id"],
            self.anchor.distribution.as_str()
        );
        assert_eq!(body["stellar_memo_type"], "id");
        let id = body["id"].as_str().unwrap().to_owned();
        let memo = body["stellar_memo"].as_str().unwrap().parse().unwrap();
        let t = self.transaction(&id).await;
        assert_eq!(t["status"], "pending_sender", "{t}");
        assert_eq!(t["amount_in"], amount);
        Created { id, memo }
    }

    /// PUT /transactions/{id}/callback with a fresh recording URL.
    async fn watch(&self, id: &str) -> Wallet {
        let recorder = Recorder::default();
        let url = recorder.start("/sep31/callback?tx=flow").await;
        let response = self
            .anchor
            .http
            .put(format!("{}/transactions/{id}/callback", self.anchor.sep31))
            .bearer_auth(&self.token)
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        Wallet { recorder, url }
    }

    async fn transaction(&self, id: &str) -> Value {
        let response = self
            .anchor
            .http
            .get(format!("{}/transactions/{id}", self.anchor.sep31))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        body["transaction"].clone()
    }

    /// Polls GET /transactions/{id} until it is `status`; fails at once if it ends in
    /// another final status, and after [`WITHIN`].
    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + WITHIN;
        loop {
            let t = self.transaction(id).await;
            if t["status"] == status {
                return t;
            }
            let done = ["completed", "error", "refunded", "expired"];
            assert!(
                !done.contains(&t["status"].as_str().unwrap_or_default()),
                "transaction {id} ended {} instead of becoming {status}: {t}",
                t["status"]
            );
            assert!(
                Instant::now() < deadline,
                "transaction {id} did not become {status} within {WITHIN:?}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // -- Stellar --

    /// Pays `amount` USDC with an id memo to the distribution account: a transaction built
    /// and signed as a wallet does, submitted to Horizon's `POST /transactions`. Returns its
    /// hash, computed here and checked against Horizon's answer.
    async fn pay(&self, memo: u64, amount: &str) -> String {
        let anchor = self.anchor;
        let key_bytes = |g: &str| Uint256(PublicKey::from_strkey(g).unwrap().0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let tx = Transaction {
            source_account: MuxedAccount::Ed25519(Uint256(self.key.public_key().0)),
            fee: 100,
            seq_num: SequenceNumber(self.sequence.fetch_add(1, Ordering::SeqCst)),
            cond: Preconditions::Time(TimeBounds {
                min_time: TimePoint(0),
                max_time: TimePoint(now + 300),
            }),
            memo: Memo::Id(memo),
            operations: vec![Operation {
                source_account: None,
                body: OperationBody::Payment(PaymentOp {
                    destination: MuxedAccount::Ed25519(key_bytes(&anchor.distribution)),
                    asset: Asset::CreditAlphanum4(AlphaNum4 {
                        asset_code: AssetCode4(*b"USDC"),
                        issuer: AccountId(stellar_xdr::PublicKey::PublicKeyTypeEd25519(key_bytes(
                            &anchor.issuer,
                        ))),
                    }),
                    amount: stroops(amount),
                }),
            }]
            .try_into()
            .unwrap(),
            ext: TransactionExt::V0,
        };
        let hash = hex::encode(tx.hash(anchor.network.id()).unwrap());
        let signature = stellar::sep10::sign_decorated(&self.key, &tx, &anchor.network).unwrap();
        let envelope = TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: vec![signature].try_into().unwrap(),
        })
        .to_xdr_base64(Limits::none())
        .unwrap();
        let response = anchor
            .http
            .post(format!("{}/transactions", anchor.horizon.url()))
            .form(&[("tx", envelope.as_str())])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "Horizon refused the payment: {body}");
        assert_eq!(body["hash"], hash.as_str(), "{body}");
        assert_eq!(body["successful"], true, "{body}");
        hash
    }
}

/// A Stellar amount ("13.13") in stroops.
fn stroops(amount: &str) -> i64 {
    let (units, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    assert!(fraction.len() <= 7, "{amount}");
    let fraction = format!("{fraction:0<7}");
    units.parse::<i64>().unwrap() * 10_000_000 + fraction.parse::<i64>().unwrap()
}

impl Wallet {
    /// The callbacks, once `statuses.len()` have arrived and no more follows: each checked as
    /// a wallet checks it (a POST to the URL, signed with the stellar.toml SIGNING_KEY over
    /// `<t>.<host>.<body>`), about transaction `id`, carrying `statuses` in order. Returns
    /// the transactions they carried.
    async fn heard(&self, anchor: &Anchor, id: &str, statuses: &[&str]) -> Vec<Value> {
        self.recorder.wait_for(statuses.len(), WITHIN).await;
        self.recorder.stays_at(statuses.len(), QUIET).await;
        let carried: Vec<Value> = self
            .recorder
            .all()
            .iter()
            .map(|d| verified(d, &anchor.signing_key, &self.url)["transaction"].clone())
            .collect();
        for t in &carried {
            assert_eq!(t["id"], id, "{t}");
        }
        let heard: Vec<&str> = carried
            .iter()
            .map(|t| t["status"].as_str().unwrap())
            .collect();
        assert_eq!(heard, statuses, "the callbacks, in order");
        carried
    }
}

// ---- the flows -----------------------------------------------------------------------------

/// POST → payment streamed → pending_receiver → executed → completed: the sending anchor
/// hears each change in a signed callback, and what it last heard is what GET shows.
async fn a_payment_is_paid_out_at_once(db: Option<String>) {
    let anchor = Anchor::start(db, "instant").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending.create("25", &sender, &receiver).await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    let hash = sending.pay(created.memo, "25").await;

    let t = sending.wait_status(id, "completed").await;
    assert_eq!(t["stellar_transaction_id"], hash.as_str(), "{t}");
    assert_eq!(t["external_transaction_id"], format!("sim-{id}"), "{t}");
    assert_eq!(t["amount_in"], "25");
    assert_eq!(t["amount_fee"], "1");
    assert_eq!(t["amount_out"], "24");
    assert!(
        t["completed_at"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{t}"
    );
    assert!(t.get("refunds").is_none(), "{t}");

    let heard = wallet
        .heard(&anchor, id, &["pending_receiver", "completed"])
        .await;
    assert_eq!(heard[0]["stellar_transaction_id"], hash.as_str());
    assert_eq!(heard[1], t, "the last callback carries what GET shows");

    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("completed", "rails"),
        ]
    );
    let detail = anchor.detail(id).await;
    assert_eq!(detail["payout"]["round"], 1, "{detail}");
    assert_eq!(detail["payout"]["idempotency_key"], id);
    assert_eq!(detail["payout"]["state"], "done");
    assert_eq!(detail["payments"].as_array().unwrap().len(), 1, "{detail}");
    anchor.stop().await;
}

/// ... → pending_receiver → pending_external (the rails took the payout) → completed on the
/// poller's next pass.
async fn a_submitted_payout_completes_after_a_poll(db: Option<String>) {
    let anchor = Anchor::start(db, "external").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending.create("40", &sender, &receiver).await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    sending.pay(created.memo, "40").await;

    let t = sending.wait_status(id, "completed").await;
    assert_eq!(t["external_transaction_id"], format!("sim-{id}"), "{t}");
    assert_eq!(t["amount_out"], "39");
    let heard = wallet
        .heard(
            &anchor,
            id,
            &["pending_receiver", "pending_external", "completed"],
        )
        .await;
    assert_eq!(heard[1]["external_transaction_id"], format!("sim-{id}"));
    assert!(heard[1].get("completed_at").is_none(), "{}", heard[1]);
    assert_eq!(heard[2], t);
    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("pending_external", "rails"),
            step("completed", "rails"),
        ]
    );
    anchor.stop().await;
}

/// The rails refuse the receiver's account number: pending_customer_info_update, the field
/// shown REJECTED in SEP-12; the sending anchor corrects it with a SEP-12 PUT, the receiver
/// is ACCEPTED again (its SEP-12 callback says so), and the transaction goes back to
/// pending_receiver by itself and is paid in a second round.
async fn a_customer_correction_leads_back_to_completed(db: Option<String>) {
    let anchor = Anchor::start(db, "instant").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending
        .create(CUSTOMER_INFO_AMOUNT, &sender, &receiver)
        .await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    sending.pay(created.memo, CUSTOMER_INFO_AMOUNT).await;

    let t = sending
        .wait_status(id, "pending_customer_info_update")
        .await;
    assert!(
        t["status_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{t}"
    );
    let seen = sending.customer(&receiver, "sep31-receiver").await;
    assert_eq!(seen["status"], "NEEDS_INFO", "{seen}");
    let field = &seen["provided_fields"]["bank_account_number"];
    assert_eq!(field["status"], "REJECTED", "{seen}");
    assert!(
        field["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{seen}"
    );
    assert_eq!(
        sending.customer(&sender, "sep31-sender").await["status"],
        "ACCEPTED",
        "only the receiver is asked for"
    );

    // The sending anchor listens for the receiver's status, then corrects the field.
    let kyc_wallet = Recorder::default();
    let kyc_url = kyc_wallet.start("/sep12/callback").await;
    let response = anchor
        .http
        .put(format!("{}/customer/callback", anchor.kyc))
        .bearer_auth(&sending.token)
        .json(&json!({"id": receiver, "url": kyc_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let corrected = sending
        .put_customer(json!({
            "id": receiver,
            "memo": "2",
            "type": "sep31-receiver",
            "bank_account_number": "87654321",
        }))
        .await;
    assert_eq!(corrected, receiver);

    let t = sending.wait_status(id, "completed").await;
    assert_eq!(t["external_transaction_id"], format!("sim-{id}:2"), "{t}");
    assert!(t.get("status_message").is_none(), "{t}");
    let heard = wallet
        .heard(
            &anchor,
            id,
            &[
                "pending_receiver",
                "pending_customer_info_update",
                "pending_receiver",
                "completed",
            ],
        )
        .await;
    assert_eq!(heard[3], t);

    let got = kyc_wallet.wait_for(1, WITHIN).await;
    let accepted = verified(&got[0], &anchor.signing_key, &kyc_url);
    assert_eq!(accepted["id"], receiver.as_str());
    assert_eq!(accepted["status"], "ACCEPTED", "{accepted}");
    kyc_wallet.stays_at(1, QUIET).await;

    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("pending_customer_info_update", "rails"),
            step("pending_receiver", "kyc"),
            step("completed", "rails"),
        ]
    );
    let detail = anchor.detail(id).await;
    assert_eq!(detail["payout"]["round"], 2, "{detail}");
    assert_eq!(detail["payout"]["idempotency_key"], format!("{id}:2"));
    assert_eq!(detail["payout"]["state"], "done");
    anchor.stop().await;
}

/// The rails need a per-transaction field: pending_transaction_info_update with
/// required_info_updates; the sending anchor PATCHes it, and the transaction goes back to
/// pending_receiver and is paid in a second round.
async fn a_transaction_correction_leads_back_to_completed(db: Option<String>) {
    let anchor = Anchor::start(db, "instant").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending
        .create(TRANSACTION_INFO_AMOUNT, &sender, &receiver)
        .await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    sending.pay(created.memo, TRANSACTION_INFO_AMOUNT).await;

    let t = sending
        .wait_status(id, "pending_transaction_info_update")
        .await;
    let wanted = t["required_info_updates"]["transaction"]
        .as_object()
        .unwrap_or_else(|| panic!("required_info_updates: {t}"));
    assert_eq!(
        wanted.keys().collect::<Vec<_>>(),
        ["receiver_routing_number"],
        "{t}"
    );
    assert!(
        wanted["receiver_routing_number"]["description"].is_string(),
        "{t}"
    );
    assert!(
        t["required_info_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{t}"
    );

    let response = anchor
        .http
        .patch(format!("{}/transactions/{id}", anchor.sep31))
        .bearer_auth(&sending.token)
        .json(&json!({"fields": {"transaction": {"receiver_routing_number": "021000021"}}}))
        .send()
        .await
        .unwrap();
    let (status, patched) = json_of(response).await;
    assert_eq!(status, 200, "{patched}");
    let patched = &patched["transaction"];
    assert_eq!(patched["status"], "pending_receiver", "{patched}");
    assert!(patched.get("required_info_updates").is_none(), "{patched}");

    let t = sending.wait_status(id, "completed").await;
    assert_eq!(t["external_transaction_id"], format!("sim-{id}:2"), "{t}");
    assert!(t.get("required_info_updates").is_none(), "{t}");
    let heard = wallet
        .heard(
            &anchor,
            id,
            &[
                "pending_receiver",
                "pending_transaction_info_update",
                "pending_receiver",
                "completed",
            ],
        )
        .await;
    assert_eq!(
        heard[1]["required_info_updates"]["transaction"]["receiver_routing_number"]["description"],
        wanted["receiver_routing_number"]["description"]
    );
    assert_eq!(heard[3], t);

    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("pending_transaction_info_update", "rails"),
            step("pending_receiver", &sending.actor()),
            step("completed", "rails"),
        ]
    );
    let detail = anchor.detail(id).await;
    assert_eq!(
        detail["fields"]["receiver_routing_number"], "021000021",
        "{detail}"
    );
    assert_eq!(detail["payout"]["round"], 2, "{detail}");
    assert_eq!(detail["payout"]["idempotency_key"], format!("{id}:2"));
    anchor.stop().await;
}

/// The rails refuse the payout for good: error, with their message, and no second try.
async fn a_refused_payout_ends_in_error(db: Option<String>) {
    let anchor = Anchor::start(db, "instant").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending.create(ERROR_AMOUNT, &sender, &receiver).await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    let hash = sending.pay(created.memo, ERROR_AMOUNT).await;

    let t = sending.wait_status(id, "error").await;
    assert!(
        t["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{t}"
    );
    assert_eq!(t["stellar_transaction_id"], hash.as_str());
    assert!(t.get("refunds").is_none(), "{t}");
    assert!(t.get("completed_at").is_none(), "{t}");
    let heard = wallet
        .heard(&anchor, id, &["pending_receiver", "error"])
        .await;
    assert_eq!(heard[1], t);
    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("error", "rails"),
        ]
    );
    let detail = anchor.detail(id).await;
    assert_eq!(detail["payout"]["round"], 1, "{detail}");
    assert_eq!(detail["payout"]["attempts"], 1, "{detail}");
    assert_eq!(detail["payout"]["state"], "done", "{detail}");
    anchor.stop().await;
}

/// The rails cannot pay and send the payment back in full: refunded, with the refund
/// recorded in SEP-31's refunds object and nothing paid out.
async fn a_payment_the_rails_send_back_is_refunded(db: Option<String>) {
    let anchor = Anchor::start(db, "instant").await;
    let sending = SendingAnchor::login(&anchor).await;
    let (sender, receiver) = sending.register_customers().await;
    let created = sending.create(REFUND_AMOUNT, &sender, &receiver).await;
    let id = created.id.as_str();
    let wallet = sending.watch(id).await;
    let hash = sending.pay(created.memo, REFUND_AMOUNT).await;

    let t = sending.wait_status(id, "refunded").await;
    assert_eq!(t["amount_in"], REFUND_AMOUNT);
    assert_eq!(t["amount_out"], "0", "{t}");
    assert_eq!(t["stellar_transaction_id"], hash.as_str());
    assert!(
        t["status_message"].as_str().is_some_and(|m| !m.is_empty()),
        "{t}"
    );
    let refunds = &t["refunds"];
    assert_eq!(refunds["amount_refunded"], REFUND_AMOUNT, "{t}");
    assert_eq!(refunds["amount_fee"], "0", "{t}");
    let payments = refunds["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{t}");
    assert_eq!(payments[0]["amount"], REFUND_AMOUNT);
    assert_eq!(payments[0]["fee"], "0");
    let refund_id = payments[0]["id"].as_str().unwrap();
    assert_eq!(refund_id.len(), 64, "a Stellar transaction hash: {t}");
    assert!(refund_id.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
    assert_ne!(refund_id, hash, "the refund is not the incoming payment");

    let heard = wallet
        .heard(&anchor, id, &["pending_receiver", "refunded"])
        .await;
    assert_eq!(heard[1], t);
    assert_eq!(heard[1]["refunds"], *refunds);
    assert_eq!(
        anchor.trail(id).await,
        [
            step("pending_sender", &sending.actor()),
            step("pending_receiver", "watcher"),
            step("refunded", "rails"),
        ]
    );
    anchor.stop().await;
}
