//! A world for payment tests: the anchor receiving USDC at a fresh distribution account,
//! streaming a fake Horizon, with a logged-in sending anchor that pays, and helpers to read
//! back what happened through SEP-31 and the admin API.

use std::time::Duration;

use fake_horizon::{Asset, FakeHorizon, Memo, Op, Tx};
use serde_json::{Value, json};
use stellar::Keypair;

use super::{ADMIN_KEY, AppOptions, TestApp, admin_toml, json_of};

/// An anchor receiving USDC (fixed fee 1) at a fresh distribution account, streaming a fake
/// Horizon, with a logged-in sending anchor. No SEP-31 customer types are configured, so a
/// POST is payable at once (KYC has its own tests).
pub struct World {
    pub app: TestApp,
    pub horizon: FakeHorizon,
    pub issuer: String,
    pub distribution: String,
    pub token: String,
    /// The sending anchor's account, which pays.
    pub payer: String,
    pub sender: Keypair,
}

pub fn g(key: &Keypair) -> String {
    key.public_key().to_string()
}

/// `extra` goes into `[watcher]`; `more` is any other TOML, merged section by section.
pub fn world_toml(
    horizon: &FakeHorizon,
    issuer: &str,
    distribution: &str,
    extra: &str,
    more: &str,
) -> String {
    // From the start of history unless the test says otherwise, so no payment a test makes
    // can slip in before the first connection.
    let start = if extra.contains("start =") {
        ""
    } else {
        "start = \"0\"\n"
    };
    // Fees come from the SEP-31 business server when `more` names one (capstan refuses
    // both); a `business_url` of the payout rails leaves them here.
    let sep31_business = toml::from_str::<toml::Table>(more)
        .ok()
        .and_then(|t| t.get("sep31")?.get("business_url").cloned())
        .is_some();
    let fee = if sep31_business {
        ""
    } else {
        "fee_fixed = \"1\"\n"
    };
    format!(
        "[stellar]\nhorizon_url = \"{}\"\n\
         [watcher]\nenabled = true\n{start}max_backoff_secs = 1\n{extra}\n\
         [[assets]]\ncode = \"USDC\"\nissuer = \"{issuer}\"\ndistribution_account = \"{distribution}\"\n\
         [sep31.assets.USDC]\n{fee}\
         [kyc.types.individual]\nfields = [\"first_name\"]\n\
         {}\n{more}",
        horizon.url(),
        admin_toml()
    )
}

pub async fn world(db: Option<String>, watcher_toml: &str) -> World {
    world_with(db, watcher_toml, "").await
}

/// A world with more configuration (`[rails]`, KYC types, ...).
pub async fn world_with(db: Option<String>, watcher_toml: &str, more: &str) -> World {
    let horizon = FakeHorizon::start().await;
    let issuer = g(&Keypair::random());
    let distribution = g(&Keypair::random());
    world_on(horizon, issuer, distribution, db, watcher_toml, more).await
}

/// A world on a Horizon that may already have history.
pub async fn world_on(
    horizon: FakeHorizon,
    issuer: String,
    distribution: String,
    db: Option<String>,
    watcher_toml: &str,
    more: &str,
) -> World {
    let app = TestApp::spawn_with(AppOptions {
        toml: world_toml(&horizon, &issuer, &distribution, watcher_toml, more),
        database_url: db,
        ..Default::default()
    })
    .await;
    let sender = Keypair::random();
    let token = app.token_for(&sender, None).await;
    World {
        app,
        horizon,
        issuer,
        distribution,
        token,
        payer: g(&sender),
        sender,
    }
}

impl World {
    pub fn usdc(&self) -> Asset {
        Asset::credit("USDC", &self.issuer)
    }

    /// POST /transactions: (id, memo).
    pub async fn create(&self, amount: &str) -> (String, u64) {
        let (status, body) = self
            .app
            .post_transaction(
                &self.token,
                json!({"amount": amount, "asset_code": "USDC", "funding_method": "SEPA"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["stellar_account_id"], self.distribution.as_str());
        assert_eq!(body["stellar_memo_type"], "id");
        let memo = body["stellar_memo"].as_str().unwrap().parse().unwrap();
        (body["id"].as_str().unwrap().to_owned(), memo)
    }

    /// A plain payment of USDC to the distribution account; returns its paging token.
    pub fn pay(&self, memo: Memo, amount: &str) -> String {
        self.submit(Tx::new(
            &self.payer,
            memo,
            vec![Op::Payment {
                from: None,
                to: self.distribution.clone(),
                asset: self.usdc(),
                amount: amount.into(),
            }],
        ))
    }

    /// Submits a transaction; returns the paging token of its last operation.
    pub fn submit(&self, tx: Tx) -> String {
        let tokens = self.horizon.submit(tx);
        tokens.last().cloned().expect("an operation")
    }

    pub async fn transaction(&self, id: &str) -> Value {
        let response = self
            .app
            .http
            .get(format!("{}/sep31/transactions/{id}", self.app.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        body["transaction"].clone()
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..400 {
            let t = self.transaction(id).await;
            if t["status"] == status {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "transaction {id} never became {status}: {}",
            self.transaction(id).await
        );
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.admin_url()))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.unwrap()).await
    }

    pub async fn payments(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .admin(
                reqwest::Method::GET,
                &format!("/admin/payments?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["payments"].as_array().unwrap().clone()
    }

    /// Waits until the watcher recorded `n` payments in all.
    pub async fn wait_recorded(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let payments = self.payments("limit=200").await;
            if payments.len() >= n {
                return payments;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the watcher recorded {} payments, not {n}",
            self.payments("limit=200").await.len()
        );
    }

    /// Waits until the stream has passed the newest record (its stored cursor is Horizon's
    /// latest paging token), so anything not recorded by then was ignored.
    pub async fn wait_caught_up(&self) {
        let latest = self
            .horizon
            .latest_token()
            .expect("something was submitted");
        for _ in 0..400 {
            let cursor = self
                .app
                .running
                .anchor
                .store
                .watcher_cursor(&self.distribution)
                .await
                .unwrap();
            if cursor.as_deref() == Some(latest.as_str()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the watcher never reached cursor {latest}");
    }
}
