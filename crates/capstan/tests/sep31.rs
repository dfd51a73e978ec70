//! SEP-31 receive API, black-box: the real anchor on a real port, over HTTP, on SQLite and
//! on PostgreSQL (checklist §5 SEP31-01..55 and the SEP-31 entries of §10, AMB-*).
//!
//! Status changes that later code (the payment watcher, payouts) will make are made here
//! in-process through `Store::transition`, the one function that writes a status; the
//! random walk over the status machine has its own file (`sep31_status.rs`).

mod common;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use capstan::sep31::status::Status;
use capstan::sep31::transactions::transaction_body;
use capstan::store::{Store, TransactionRow};
use common::callbacks::{self, Delivery, Recorder};
use common::on_both_backends;
use common::{ADMIN_KEY, AppOptions, TestApp, admin_toml};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use stellar::{ClientAccount, Keypair, PublicKey};

// ---- configuration ---------------------------------------------------------------------

/// The two SEP-31 types (the defaults' fields) and a third type that is neither.
const TYPES: &str = r#"
[kyc.types.sep31-sender]
fields = ["first_name", "last_name", "email_address"]
optional = ["mobile_number"]

[kyc.types.sep31-receiver]
fields = ["first_name", "last_name", "email_address", "bank_account_number", "bank_number"]

[kyc.types.phone-verified]
fields = ["first_name", "mobile_number"]
"#;

const SENDER: &[(&str, &str)] = &[
    ("type", "sep31-sender"),
    ("first_name", "Ana"),
    ("last_name", "Silva"),
    ("email_address", "ana@example.com"),
];
const RECEIVER: &[(&str, &str)] = &[
    ("type", "sep31-receiver"),
    ("first_name", "Bruno"),
    ("last_name", "Costa"),
    ("email_address", "bruno@example.com"),
    ("bank_account_number", "12345678"),
    ("bank_number", "021000021"),
];

/// The anchor with the types above, the admin API, `kyc` lines added to `[kyc]`, and the
/// test's own TOML (`[sep31]`, `[[assets]]`, ...).
async fn spawn_with(db: Option<String>, kyc: &str, toml: &str) -> TestApp {
    TestApp::spawn_with(AppOptions {
        toml: format!("[kyc]\n{kyc}\n{TYPES}\n{}\n{toml}", admin_toml()),
        database_url: db,
        ..Default::default()
    })
    .await
}

async fn spawn(db: Option<String>, toml: &str) -> TestApp {
    spawn_with(db, "", toml).await
}

/// An `[[assets]]` entry with fresh issuer and distribution accounts.
fn asset_toml(code: &str) -> String {
    asset_toml_issued(code, &g(&Keypair::random()))
}

fn asset_toml_issued(code: &str, issuer: &str) -> String {
    format!(
        "[[assets]]\ncode = \"{code}\"\nissuer = \"{issuer}\"\ndistribution_account = \"{}\"\n",
        g(&Keypair::random())
    )
}

/// (issuer, distribution account) of the asset received under `code`.
fn asset_of(app: &TestApp, code: &str) -> (String, String) {
    let asset = app
        .running
        .anchor
        .receive_assets
        .iter()
        .find(|a| a.code == code)
        .unwrap_or_else(|| panic!("{code} is received"));
    (
        asset.issuer.to_string(),
        asset.distribution_account.to_string(),
    )
}

fn g(key: &Keypair) -> String {
    key.public_key().to_string()
}

fn muxed(key: &Keypair, id: u64) -> String {
    ClientAccount {
        account: key.public_key(),
        memo: Some(id),
        muxed: true,
    }
    .sub()
}

// ---- the two backends ---------------------------------------------------------------------

on_both_backends! {
    sep31_recheck_finds_every_waiting_transaction => sep31_recheck_finds_every_waiting_transaction_sqlite, sep31_recheck_finds_every_waiting_transaction_postgres;
    sep31_async_kyc_through_transaction_id => sep31_async_kyc_through_transaction_id_sqlite, sep31_async_kyc_through_transaction_id_postgres;
    sep31_01_direct_payment_server_is_published => sep31_01_direct_payment_server_is_published_sqlite, sep31_01_direct_payment_server_is_published_postgres;
    sep31_02_only_sending_anchors_with_an_agreement => sep31_02_only_sending_anchors_with_an_agreement_sqlite, sep31_02_only_sending_anchors_with_an_agreement_postgres;
    sep31_03_kyc_server_serves_the_sep31_types => sep31_03_kyc_server_serves_the_sep31_types_sqlite, sep31_03_kyc_server_serves_the_sep31_types_postgres;
    sep31_04_no_quote_server_without_sep38 => sep31_04_no_quote_server_without_sep38_sqlite, sep31_04_no_quote_server_without_sep38_postgres;
    sep31_05_token_on_every_endpoint_but_info => sep31_05_token_on_every_endpoint_but_info_sqlite, sep31_05_token_on_every_endpoint_but_info_postgres;
    sep31_06_base_account_is_checked_against_the_allow_list => sep31_06_base_account_is_checked_against_the_allow_list_sqlite, sep31_06_base_account_is_checked_against_the_allow_list_postgres;
    sep31_07_every_authentication_failure_is_403 => sep31_07_every_authentication_failure_is_403_sqlite, sep31_07_every_authentication_failure_is_403_postgres;
    sep31_09_json_in_and_json_out => sep31_09_json_in_and_json_out_sqlite, sep31_09_json_in_and_json_out_postgres;
    sep31_11_receive_has_one_key_per_asset_code => sep31_11_receive_has_one_key_per_asset_code_sqlite, sep31_11_receive_has_one_key_per_asset_code_postgres;
    sep31_12_asset_code_must_be_a_receive_key => sep31_12_asset_code_must_be_a_receive_key_sqlite, sep31_12_asset_code_must_be_a_receive_key_postgres;
    sep31_13_one_to_one_minus_fees => sep31_13_one_to_one_minus_fees_sqlite, sep31_13_one_to_one_minus_fees_postgres;
    sep31_14_kyc_types_are_listed_per_party => sep31_14_kyc_types_are_listed_per_party_sqlite, sep31_14_kyc_types_are_listed_per_party_postgres;
    sep31_15_lang_falls_back_to_english => sep31_15_lang_falls_back_to_english_sqlite, sep31_15_lang_falls_back_to_english_postgres;
    sep31_16_request_is_validated_with_useful_messages => sep31_16_request_is_validated_with_useful_messages_sqlite, sep31_16_request_is_validated_with_useful_messages_postgres;
    sep31_17_min_and_max_amount => sep31_17_min_and_max_amount_sqlite, sep31_17_min_and_max_amount_postgres;
    sep31_18_funding_method_is_required_and_offered => sep31_18_funding_method_is_required_and_offered_sqlite, sep31_18_funding_method_is_required_and_offered_postgres;
    sep31_19_refund_memo_and_type_go_together => sep31_19_refund_memo_and_type_go_together_sqlite, sep31_19_refund_memo_and_type_go_together_postgres;
    sep31_20_customers_are_required_and_accepted => sep31_20_customers_are_required_and_accepted_sqlite, sep31_20_customers_are_required_and_accepted_postgres;
    sep31_21_destination_asset_is_refused_without_sep38 => sep31_21_destination_asset_is_refused_without_sep38_sqlite, sep31_21_destination_asset_is_refused_without_sep38_postgres;
    sep31_22_quote_id_is_refused_without_sep38 => sep31_22_quote_id_is_refused_without_sep38_sqlite, sep31_22_quote_id_is_refused_without_sep38_postgres;
    sep31_23_quotes_are_never_required => sep31_23_quotes_are_never_required_sqlite, sep31_23_quotes_are_never_required_postgres;
    sep31_24_record_is_persistent_and_reachable => sep31_24_record_is_persistent_and_reachable_sqlite, sep31_24_record_is_persistent_and_reachable_postgres;
    sep31_25_starts_pending_sender_with_the_payment_details => sep31_25_starts_pending_sender_with_the_payment_details_sqlite, sep31_25_starts_pending_sender_with_the_payment_details_postgres;
    sep31_26_each_transaction_gets_a_unique_memo => sep31_26_each_transaction_gets_a_unique_memo_sqlite, sep31_26_each_transaction_gets_a_unique_memo_postgres;
    sep31_27_deprecated_fields_are_validated => sep31_27_deprecated_fields_are_validated_sqlite, sep31_27_deprecated_fields_are_validated_postgres;
    sep31_28_post_without_a_token_is_403 => sep31_28_post_without_a_token_is_403_sqlite, sep31_28_post_without_a_token_is_403_postgres;
    sep31_29_get_returns_the_wrapped_transaction => sep31_29_get_returns_the_wrapped_transaction_sqlite, sep31_29_get_returns_the_wrapped_transaction_postgres;
    sep31_30_unknown_or_foreign_transaction_is_404 => sep31_30_unknown_or_foreign_transaction_is_404_sqlite, sep31_30_unknown_or_foreign_transaction_is_404_postgres;
    sep31_31_no_sep38_asset_ids_without_quotes => sep31_31_no_sep38_asset_ids_without_quotes_sqlite, sep31_31_no_sep38_asset_ids_without_quotes_postgres;
    sep31_32_amounts_and_fees_add_up => sep31_32_amounts_and_fees_add_up_sqlite, sep31_32_amounts_and_fees_add_up_postgres;
    sep31_33_new_transaction_starts_pending_sender => sep31_33_new_transaction_starts_pending_sender_sqlite, sep31_33_new_transaction_starts_pending_sender_postgres;
    sep31_37_transaction_info_update_describes_the_fields => sep31_37_transaction_info_update_describes_the_fields_sqlite, sep31_37_transaction_info_update_describes_the_fields_postgres;
    sep31_38_customer_info_update_shows_needs_info => sep31_38_customer_info_update_shows_needs_info_sqlite, sep31_38_customer_info_update_shows_needs_info_postgres;
    sep31_40_refunded_transaction_carries_refunds => sep31_40_refunded_transaction_carries_refunds_sqlite, sep31_40_refunded_transaction_carries_refunds_postgres;
    sep31_41_refund_memo_is_kept_for_the_refund => sep31_41_refund_memo_is_kept_for_the_refund_sqlite, sep31_41_refund_memo_is_kept_for_the_refund_postgres;
    sep31_44_no_callback_for_the_initial_status => sep31_44_no_callback_for_the_initial_status_sqlite, sep31_44_no_callback_for_the_initial_status_postgres;
    sep31_45_patch_is_refused_when_nothing_was_requested => sep31_45_patch_is_refused_when_nothing_was_requested_sqlite, sep31_45_patch_is_refused_when_nothing_was_requested_postgres;
    sep31_46_patch_updates_the_requested_fields => sep31_46_patch_updates_the_requested_fields_sqlite, sep31_46_patch_updates_the_requested_fields_postgres;
    sep31_47_kyc_for_a_transaction_is_validated => sep31_47_kyc_for_a_transaction_is_validated_sqlite, sep31_47_kyc_for_a_transaction_is_validated_postgres;
    sep31_48_customers_are_reached_through_the_transaction => sep31_48_customers_are_reached_through_the_transaction_sqlite, sep31_48_customers_are_reached_through_the_transaction_postgres;
    sep31_49_customer_info_update_is_put_until_accepted => sep31_49_customer_info_update_is_put_until_accepted_sqlite, sep31_49_customer_info_update_is_put_until_accepted_postgres;
    sep31_50_a_later_callback_url_replaces_the_first => sep31_50_a_later_callback_url_replaces_the_first_sqlite, sep31_50_a_later_callback_url_replaces_the_first_postgres;
    sep31_51_every_status_change_posts_the_get_body => sep31_51_every_status_change_posts_the_get_body_sqlite, sep31_51_every_status_change_posts_the_get_body_postgres;
    sep31_52_53_54_callbacks_are_signed_with_the_signing_key => sep31_52_53_54_callbacks_are_signed_with_the_signing_key_sqlite, sep31_52_53_54_callbacks_are_signed_with_the_signing_key_postgres;
    sep31_55_a_refused_callback_is_retried => sep31_55_a_refused_callback_is_retried_sqlite, sep31_55_a_refused_callback_is_retried_postgres;
    expiry_unpaid_transactions_expire_after_the_timeout => expiry_unpaid_transactions_expire_after_the_timeout_sqlite, expiry_unpaid_transactions_expire_after_the_timeout_postgres;
    amb_01_info_is_served_without_a_token => amb_01_info_is_served_without_a_token_sqlite, amb_01_info_is_served_without_a_token_postgres;
    amb_03_structured_errors_are_told_apart_by_error => amb_03_structured_errors_are_told_apart_by_error_sqlite, amb_03_structured_errors_are_told_apart_by_error_postgres;
    amb_06_info_publishes_the_compatibility_keys => amb_06_info_publishes_the_compatibility_keys_sqlite, amb_06_info_publishes_the_compatibility_keys_postgres;
    amb_14_customers_of_any_memo_of_the_sending_anchor => amb_14_customers_of_any_memo_of_the_sending_anchor_sqlite, amb_14_customers_of_any_memo_of_the_sending_anchor_postgres;
    amb_28_amount_is_a_number_or_a_numeric_string => amb_28_amount_is_a_number_or_a_numeric_string_sqlite, amb_28_amount_is_a_number_or_a_numeric_string_postgres;
    amb_30_callback_url_errors => amb_30_callback_url_errors_sqlite, amb_30_callback_url_errors_postgres;
    error_400_malformed_bodies => error_400_malformed_bodies_sqlite, error_400_malformed_bodies_postgres;
    error_400_odd_transaction_ids_in_the_path => error_400_odd_transaction_ids_in_the_path_sqlite, error_400_odd_transaction_ids_in_the_path_postgres;
    error_403_unknown_sending_anchor_on_every_endpoint => error_403_unknown_sending_anchor_on_every_endpoint_sqlite, error_403_unknown_sending_anchor_on_every_endpoint_postgres;
    error_404_every_transaction_endpoint => error_404_every_transaction_endpoint_sqlite, error_404_every_transaction_endpoint_postgres;
    error_405_413_415_transport_errors_are_json => error_405_413_415_transport_errors_are_json_sqlite, error_405_413_415_transport_errors_are_json_postgres;
}

// ---- HTTP ------------------------------------------------------------------------------

/// Every SEP-31 answer is JSON (SEP31-09) except a 204, never a server error, and every
/// 4xx carries a string `error` (X-03).
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    assert!(status < 500, "server error {status}: {text}");
    if status == 204 {
        assert!(text.is_empty(), "a 204 has no body: {text:?}");
        return (status, Value::Null);
    }
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?} for {status} {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON (status {status}): {text:?}"));
    if status >= 400 {
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a {status} without a string error: {body}"
        );
    }
    (status, body)
}

/// A request to `<base_url><path>` with an optional token and JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    answer(request.send().await.expect("request")).await
}

async fn info(app: &TestApp, token: Option<&str>) -> (u16, Value) {
    call(app, Method::GET, "/sep31/info", token, None).await
}

async fn post(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        "/sep31/transactions",
        Some(token),
        Some(body),
    )
    .await
}

async fn get_tx(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    call(
        app,
        Method::GET,
        &format!("/sep31/transactions/{id}"),
        Some(token),
        None,
    )
    .await
}

async fn patch(app: &TestApp, token: &str, id: &str, body: &Value) -> (u16, Value) {
    call(
        app,
        Method::PATCH,
        &format!("/sep31/transactions/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn put_callback(app: &TestApp, token: &str, id: &str, body: &Value) -> (u16, Value) {
    call(
        app,
        Method::PUT,
        &format!("/sep31/transactions/{id}/callback"),
        Some(token),
        Some(body),
    )
    .await
}

/// The transaction object of a GET that must succeed.
async fn transaction(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = get_tx(app, token, id).await;
    assert_eq!(status, 200, "GET /transactions/{id}: {body}");
    body["transaction"].clone()
}

async fn kyc_get(app: &TestApp, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}/customer", app.kyc_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("request");
    answer(response).await
}

async fn kyc_put(app: &TestApp, token: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let object: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(token)
        .json(&object)
        .send()
        .await
        .expect("request");
    answer(response).await
}

/// A PUT /customer that must be answered 202 `{"id"}`; returns the id.
async fn register(app: &TestApp, token: &str, pairs: &[(&str, &str)]) -> String {
    let (status, body) = kyc_put(app, token, pairs).await;
    assert_eq!(status, 202, "PUT /customer: {body}");
    body["id"].as_str().expect("customer id").to_owned()
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.admin_url()))
        .bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    common::json_of(request.send().await.expect("admin request")).await
}

async fn stellar_toml(app: &TestApp) -> toml::Table {
    let text = app
        .get("/.well-known/stellar.toml")
        .await
        .text()
        .await
        .expect("stellar.toml");
    text.parse().expect("stellar.toml is TOML")
}

// ---- sending anchors ------------------------------------------------------------------------

/// A sending anchor with a token for its account and an ACCEPTED sender (registered under
/// memo 1) and receiver (memo 2), as the deployed validator does it (AMB-14).
struct Sender {
    key: Keypair,
    token: String,
    sender: String,
    receiver: String,
}

async fn sending_anchor(app: &TestApp) -> Sender {
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let one = app.token_for(&key, Some("1")).await;
    let two = app.token_for(&key, Some("2")).await;
    let sender = register(app, &one, SENDER).await;
    let receiver = register(app, &two, RECEIVER).await;
    Sender {
        key,
        token,
        sender,
        receiver,
    }
}

impl Sender {
    /// A valid POST body for 100 USDC over SEPA, with `extra` merged in (a null removes).
    fn body(&self, extra: Value) -> Value {
        let mut body = json!({
            "amount": "100",
            "asset_code": "USDC",
            "funding_method": "SEPA",
            "sender_id": self.sender,
            "receiver_id": self.receiver,
        });
        merge(&mut body, extra);
        body
    }
}

fn merge(body: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(&k);
            } else {
                body[k] = v;
            }
        }
    }
}

/// POSTs `body`, which must be answered 201; returns the 201 body.
async fn create_with(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, created) = post(app, token, body).await;
    assert_eq!(status, 201, "POST /transactions {body}: {created}");
    created
}

/// A transaction for 100 USDC with `extra`; returns its id.
async fn create(app: &TestApp, s: &Sender, extra: Value) -> String {
    let created = create_with(app, &s.token, &s.body(extra)).await;
    created["id"].as_str().expect("id").to_owned()
}

// ---- assertions ---------------------------------------------------------------------------

/// `status` with `{"error": "..."}` (nothing else) whose message contains `needle`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, needle: &str) {
    let (code, body) = got;
    assert_eq!(*code, status, "expected {status}, got {code}: {body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body without a string error: {body}"));
    assert!(
        message.contains(needle),
        "error {message:?} does not mention {needle:?}"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "error body has keys besides error: {body}"
    );
}

#[track_caller]
fn assert_customer_info_needed(got: &(u16, Value), kind: &str) {
    assert_eq!(
        *got,
        (400, json!({"error": "customer_info_needed", "type": kind})),
        "expected customer_info_needed for {kind}"
    );
}

/// A transaction created without a customer it needs: 201 with only its `id`, waiting in
/// `pending_receiver` with no payment details (SEP-31 3.0 asynchronous KYC). Returns the id.
#[track_caller]
fn assert_waits_for_kyc(got: &(u16, Value)) -> String {
    let (status, body) = got;
    assert_eq!(*status, 201, "{body}");
    assert_eq!(keys(body), ["id"], "no payment details yet: {body}");
    body["id"].as_str().unwrap().to_owned()
}

fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn dec(value: &Value) -> Decimal {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("amount is a string: {value}"));
    Decimal::from_str(text).unwrap_or_else(|_| panic!("amount {text:?} is a decimal"))
}

/// An ISO 8601 UTC time with an explicit Z; returns unix seconds.
#[track_caller]
fn iso(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("time is a string: {value}"));
    assert!(text.ends_with('Z'), "time {text:?} ends with Z");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("time {text:?}: {e}"))
        .timestamp()
}

fn unix_now() -> i64 {
    capstan::store::unix_now()
}

// ---- in-process status changes --------------------------------------------------------------

/// Moves `id` to `to` through the status machine, as the watcher and payouts will, and
/// wakes the callback sender.
async fn step(
    app: &TestApp,
    id: &str,
    to: Status,
    edit: impl Fn(&mut TransactionRow),
) -> TransactionRow {
    let row = app
        .running
        .anchor
        .store
        .transition(id, to, "test", None, edit, |t| {
            transaction_body(t).to_string()
        })
        .await
        .unwrap_or_else(|e| panic!("transition of {id} to {to}: {e}"));
    app.running.anchor.outbox_wake.notify_one();
    row
}

/// pending_sender → pending_receiver: the payment arrived.
async fn paid(app: &TestApp, id: &str) -> TransactionRow {
    step(app, id, Status::PendingReceiver, |t| t.paid = true).await
}

/// pending_receiver → pending_transaction_info_update asking for `updates`.
async fn ask_for_fields(app: &TestApp, id: &str, updates: Value) -> TransactionRow {
    let updates = updates.to_string();
    step(app, id, Status::PendingTransactionInfoUpdate, move |t| {
        t.required_info_message = Some("the receiver's bank rejected the account".into());
        t.required_info_updates = Some(updates.clone());
    })
    .await
}

async fn stored(app: &TestApp, id: &str) -> TransactionRow {
    app.running
        .anchor
        .store
        .transaction(id)
        .await
        .unwrap()
        .expect("stored transaction")
}

async fn count_transactions(store: &Store) -> i64 {
    let sql = "SELECT COUNT(*) FROM transactions";
    match store {
        Store::Sqlite { writer: pool, .. } => {
            sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
        }
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

/// Sets a column of a transaction directly in the database.
async fn set_column(store: &Store, column: &str, id: &str, value: i64) {
    let sql = format!("UPDATE transactions SET {column} = $1 WHERE id = $2");
    let n = match store {
        Store::Sqlite { writer: pool, .. } => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(n, 1);
}

// ---- §5.1 prerequisites, auth, transport ------------------------------------------------------

async fn sep31_01_direct_payment_server_is_published(db: Option<String>) {
    let app = spawn(db, "").await;
    let toml = stellar_toml(&app).await;
    let server = toml["DIRECT_PAYMENT_SERVER"]
        .as_str()
        .expect("DIRECT_PAYMENT_SERVER");
    assert_eq!(server, format!("{}/sep31", app.url));
    assert!(!server.ends_with('/'), "X-05: no trailing slash");
    // The published base is where the endpoints are.
    let (status, body) = answer(app.http.get(format!("{server}/info")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["receive"]["USDC"].is_object(), "{body}");
}

async fn sep31_02_only_sending_anchors_with_an_agreement(db: Option<String>) {
    let partner = Keypair::random();
    let app = spawn(
        db,
        &format!("[sep31]\nsending_anchors = [\"{}\"]\n", g(&partner)),
    )
    .await;
    let token = app.token_for(&partner, None).await;
    let one = app.token_for(&partner, Some("1")).await;
    let two = app.token_for(&partner, Some("2")).await;
    let s = Sender {
        sender: register(&app, &one, SENDER).await,
        receiver: register(&app, &two, RECEIVER).await,
        key: partner,
        token,
    };
    let id = create(&app, &s, json!({})).await;
    assert_eq!(transaction(&app, &s.token, &id).await["id"], id.as_str());

    // Anyone else has no agreement: 403 naming the account.
    let stranger = Keypair::random();
    let token = app.token_for(&stranger, None).await;
    assert_error(
        &post(&app, &token, &s.body(json!({}))).await,
        403,
        &format!("account {} is not a sending anchor", g(&stranger)),
    );

    // The agreement is required on the public network, and names valid accounts.
    let public = |sep31: &str| {
        format!(
            "[server]\nbase_url = \"https://anchor.example.com\"\n\
             [stellar]\nnetwork = \"public\"\nsigning_seed = \"{}\"\n\
             [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n{sep31}\n{}",
            Keypair::random().secret_seed(),
            asset_toml("USDC"),
        )
    };
    let err = capstan::Config::from_parts(&public(""), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sep31.sending_anchors"), "{err}");
    let err = capstan::Config::from_parts(
        &public("[sep31]\nsending_anchors = [\"GNOTANACCOUNT\"]"),
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sep31.sending_anchors") && err.contains("GNOTANACCOUNT"),
        "{err}"
    );
    let config = capstan::Config::from_parts(
        &public(&format!(
            "[sep31]\nsending_anchors = [\"{}\"]",
            g(&Keypair::random())
        )),
        Vec::new(),
    )
    .expect("a public configuration with its sending anchors");
    assert_eq!(config.sep31.sending_anchors.len(), 1);
}

async fn sep31_03_kyc_server_serves_the_sep31_types(db: Option<String>) {
    let app = spawn(db, "").await;
    let toml = stellar_toml(&app).await;
    assert_eq!(
        toml["KYC_SERVER"].as_str(),
        Some(format!("{}/kyc", app.url).as_str())
    );
    let (_, info) = info(&app, None).await;
    let usdc = &info["receive"]["USDC"];
    let token = app.token_for(&Keypair::random(), None).await;
    // Each type /info names is one the KYC server asks fields for.
    for (party, kind, required) in [
        (
            "sender",
            "sep31-sender",
            &["email_address", "first_name", "last_name"][..],
        ),
        (
            "receiver",
            "sep31-receiver",
            &[
                "bank_account_number",
                "bank_number",
                "email_address",
                "first_name",
                "last_name",
            ][..],
        ),
    ] {
        assert!(usdc["sep12"][party]["types"][kind].is_object(), "{usdc}");
        let (status, body) = kyc_get(&app, &token, &[("type", kind)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "NEEDS_INFO", "{body}");
        for field in required {
            assert_eq!(
                body["fields"][field]["optional"],
                json!(false),
                "{kind} requires {field}: {body}"
            );
        }
    }
}

async fn sep31_04_no_quote_server_without_sep38(db: Option<String>) {
    let app = spawn(db, &asset_toml("EURC")).await;
    let toml = stellar_toml(&app).await;
    assert!(
        !toml.contains_key("ANCHOR_QUOTE_SERVER"),
        "no SEP-38, so no ANCHOR_QUOTE_SERVER"
    );
    let (status, info) = info(&app, None).await;
    assert_eq!(status, 200);
    for (code, asset) in info["receive"].as_object().unwrap() {
        assert_eq!(asset["quotes_supported"], json!(false), "{code}");
        assert_eq!(asset["quotes_required"], json!(false), "{code}");
    }
}

async fn sep31_05_token_on_every_endpoint_but_info(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let body = s.body(json!({}));
    let callback = json!({"url": "http://127.0.0.1:9/cb"});
    let fields = json!({"fields": {"transaction": {}}});
    let endpoints: [(Method, String, Option<&Value>); 4] = [
        (Method::POST, "/sep31/transactions".into(), Some(&body)),
        (Method::GET, format!("/sep31/transactions/{id}"), None),
        (
            Method::PATCH,
            format!("/sep31/transactions/{id}"),
            Some(&fields),
        ),
        (
            Method::PUT,
            format!("/sep31/transactions/{id}/callback"),
            Some(&callback),
        ),
    ];
    for (method, path, body) in &endpoints {
        assert_error(
            &call(&app, method.clone(), path, None, *body).await,
            403,
            "missing Authorization header",
        );
    }
    // /info needs none (AMB-01), and answers the same with one.
    let (status, anonymous) = info(&app, None).await;
    assert_eq!(status, 200, "{anonymous}");
    assert_eq!(info(&app, Some(&s.token)).await, (200, anonymous));
    // Nothing was changed by the refused requests.
    assert_eq!(stored(&app, &id).await.callback_url, None);
    assert_eq!(
        transaction(&app, &s.token, &id).await["status"],
        "pending_sender"
    );
}

async fn sep31_06_base_account_is_checked_against_the_allow_list(db: Option<String>) {
    let partner = Keypair::random();
    let other_partner = Keypair::random();
    let app = spawn(
        db,
        &format!(
            "[sep31]\nsending_anchors = [\"{}\", \"{}\"]\n",
            g(&partner),
            g(&other_partner)
        ),
    )
    .await;
    let one = app.token_for(&partner, Some("1")).await;
    let two = app.token_for(&partner, Some("2")).await;
    let sender = register(&app, &one, SENDER).await;
    let receiver = register(&app, &two, RECEIVER).await;
    let (status, login) = app.login(&muxed(&partner, 7), None, &[&partner]).await;
    assert_eq!(status, 200, "{login}");
    let m_token = login["token"].as_str().unwrap().to_owned();
    let plain = app.token_for(&partner, None).await;
    let body = json!({
        "amount": "10", "asset_code": "USDC", "funding_method": "SWIFT",
        "sender_id": sender, "receiver_id": receiver,
    });
    // Every token of the listed account is that sending anchor: G, G:memo and M....
    let mut ids = Vec::new();
    for token in [&plain, &one, &m_token] {
        let created = create_with(&app, token, &body).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for token in [&plain, &two, &m_token] {
        for id in &ids {
            assert_eq!(transaction(&app, token, id).await["id"], id.as_str());
        }
    }
    // Another listed sending anchor is allowed, but sees none of them.
    let other = app.token_for(&other_partner, None).await;
    assert_error(&get_tx(&app, &other, &ids[0]).await, 404, "not found");

    // An unlisted account is refused, with whatever memo, on every endpoint but /info.
    let stranger = Keypair::random();
    for token in [
        app.token_for(&stranger, None).await,
        app.token_for(&stranger, Some("1")).await,
    ] {
        assert_error(
            &post(&app, &token, &body).await,
            403,
            "is not a sending anchor",
        );
        assert_error(
            &get_tx(&app, &token, &ids[0]).await,
            403,
            "is not a sending anchor",
        );
        assert_eq!(info(&app, Some(&token)).await.0, 200);
    }
}

/// A token for `sub` with the anchor's own issuer, issued `age` seconds ago for `life`
/// seconds, signed with `secret` (the anchor's when `None`).
fn forged_token(app: &TestApp, sub: &str, age: u64, life: u64, secret: Option<&str>) -> String {
    let anchor = &app.running.anchor;
    let now = unix_now() as u64;
    let claims = capstan::jwt::Claims {
        iss: anchor.jwt.issuer().to_owned(),
        sub: sub.to_owned(),
        iat: now - age,
        exp: now - age + life,
        jti: hex::encode(stellar::random_bytes::<32>()),
        client_domain: None,
        home_domain: Some(app.home_domain()),
    };
    let jwt = match secret {
        None => capstan::jwt::Jwt::new(
            common::JWT_SECRET.as_bytes(),
            anchor.jwt.issuer().to_owned(),
            3600,
        ),
        Some(secret) => {
            capstan::jwt::Jwt::new(secret.as_bytes(), anchor.jwt.issuer().to_owned(), 3600)
        }
    };
    jwt.issue(&claims).unwrap()
}

async fn sep31_07_every_authentication_failure_is_403(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let account = g(&s.key);
    // A forged token built the right way is accepted: the failures below are the tokens'.
    let good = forged_token(&app, &account, 0, 3600, None);
    assert_eq!(get_tx(&app, &good, &id).await.0, 200);

    let expired = forged_token(&app, &account, 7200, 3600, None);
    let foreign = forged_token(
        &app,
        &account,
        0,
        3600,
        Some("another-secret-another-secret-0123"),
    );
    let not_an_account = forged_token(&app, "alice", 0, 3600, None);
    let headers: Vec<(&str, String)> = vec![
        ("basic scheme", "Basic dXNlcjpwYXNz".into()),
        ("empty bearer", "Bearer ".into()),
        ("garbage", "Bearer not-a-jwt".into()),
        ("expired", format!("Bearer {expired}")),
        ("other secret", format!("Bearer {foreign}")),
        ("subject not an account", format!("Bearer {not_an_account}")),
    ];
    let body = s.body(json!({}));
    let callback = json!({"url": "http://127.0.0.1:9/cb"});
    let fields = json!({"fields": {"transaction": {}}});
    for (what, header) in &headers {
        for (method, path, body) in [
            (Method::POST, "/sep31/transactions".to_owned(), Some(&body)),
            (Method::GET, format!("/sep31/transactions/{id}"), None),
            (
                Method::PATCH,
                format!("/sep31/transactions/{id}"),
                Some(&fields),
            ),
            (
                Method::PUT,
                format!("/sep31/transactions/{id}/callback"),
                Some(&callback),
            ),
        ] {
            let mut request = app
                .http
                .request(method.clone(), format!("{}{path}", app.url))
                .header("Authorization", header);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (status, answer_body) = answer(request.send().await.unwrap()).await;
            assert_eq!(status, 403, "{what} on {method} {path}: {answer_body}");
            assert_eq!(keys(&answer_body), ["error"], "{answer_body}");
        }
    }
    assert_eq!(stored(&app, &id).await.callback_url, None);
}

async fn sep31_09_json_in_and_json_out(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    // A JSON body is taken, and every answer (201, 200, 4xx) is application/json: `answer`
    // checks the content type of each.
    let created = create_with(&app, &s.token, &s.body(json!({}))).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(get_tx(&app, &s.token, id).await.0, 200);
    assert_eq!(
        post(&app, &s.token, &s.body(json!({"amount": null})))
            .await
            .0,
        400
    );
    assert_eq!(get_tx(&app, &s.token, "missing").await.0, 404);
    // A body that is neither JSON nor a form is refused with a JSON 415.
    let response = app
        .http
        .post(format!("{}/sep31/transactions", app.url))
        .bearer_auth(&s.token)
        .header(CONTENT_TYPE, "application/xml")
        .body("<transaction/>")
        .send()
        .await
        .unwrap();
    assert_error(&answer(response).await, 415, "application/json");
}

// ---- §5.3 GET /info ----------------------------------------------------------------------------

async fn sep31_11_receive_has_one_key_per_asset_code(db: Option<String>) {
    let first_issuer = g(&Keypair::random());
    let toml = format!(
        "{}{}{}",
        asset_toml_issued("USDC", &first_issuer),
        asset_toml("EURC"),
        // The same code from another issuer: SEP-31 names assets by code, so the first
        // issuer listed is the one received.
        asset_toml("USDC"),
    );
    let app = spawn(db.clone(), &toml).await;
    let (status, info) = info(&app, None).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&info), ["receive"], "{info}");
    assert_eq!(keys(&info["receive"]), ["EURC", "USDC"]);
    assert_eq!(asset_of(&app, "USDC").0, first_issuer);

    // Without [[assets]]: the demo asset alone.
    let demo = spawn(db, "").await;
    let (_, info) = self::info(&demo, None).await;
    assert_eq!(keys(&info["receive"]), ["USDC"]);
}

async fn sep31_12_asset_code_must_be_a_receive_key(db: Option<String>) {
    let app = spawn(db, &format!("{}{}", asset_toml("USDC"), asset_toml("EURC"))).await;
    let s = sending_anchor(&app).await;
    for code in ["XLM", "usdc", "USD", "EURCX"] {
        assert_error(
            &post(&app, &s.token, &s.body(json!({"asset_code": code}))).await,
            400,
            &format!("asset_code {code} is not received by this anchor"),
        );
    }
    for code in ["USDC", "EURC"] {
        create(&app, &s, json!({"asset_code": code})).await;
    }
}

async fn sep31_13_one_to_one_minus_fees(db: Option<String>) {
    let app = spawn(
        db,
        "[sep31.assets.USDC]\nfee_fixed = 1\nfee_percent = \"2\"\n",
    )
    .await;
    let (issuer, _) = asset_of(&app, "USDC");
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({"amount": "250"})).await;
    let t = transaction(&app, &s.token, &id).await;
    // No conversion: what arrives is paid out 1:1, less 1 + 2% of 250.
    assert_eq!(t["amount_in"], "250");
    assert_eq!(t["amount_fee"], "6");
    assert_eq!(t["amount_out"], "244");
    assert_eq!(t["fee_details"]["total"], "6");
    assert_eq!(
        t["fee_details"]["asset"],
        format!("stellar:USDC:{issuer}").as_str()
    );
}

async fn sep31_14_kyc_types_are_listed_per_party(db: Option<String>) {
    let app = spawn(db.clone(), "").await;
    let (_, info) = info(&app, None).await;
    let usdc = &info["receive"]["USDC"];
    assert_eq!(keys(&usdc["sep12"]), ["receiver", "sender"]);
    for (party, kind) in [("sender", "sep31-sender"), ("receiver", "sep31-receiver")] {
        let types = &usdc["sep12"][party]["types"];
        assert_eq!(keys(types), [kind], "{usdc}");
        let description = types[kind]["description"].as_str().unwrap();
        assert!(description.contains("first_name"), "{description}");
        assert_eq!(usdc[format!("{party}_sep12_type")], kind);
    }

    // A per-asset type, and a party without KYC: that party's sep12 entry is empty and its
    // id is not asked for.
    let only_sender = TestApp::spawn_with(AppOptions {
        toml: "[kyc.types.phone-verified]\nfields = [\"first_name\", \"mobile_number\"]\n\
               [sep31.assets.USDC]\nsender_type = \"phone-verified\"\n"
            .into(),
        database_url: db,
        ..Default::default()
    })
    .await;
    let (_, info) = self::info(&only_sender, None).await;
    let usdc = &info["receive"]["USDC"];
    assert_eq!(usdc["sep12"]["receiver"], json!({}), "{usdc}");
    assert_eq!(keys(&usdc["sep12"]["sender"]["types"]), ["phone-verified"]);
    assert_eq!(usdc["sender_sep12_type"], "phone-verified");
    assert!(usdc.get("receiver_sep12_type").is_none(), "{usdc}");
    let key = Keypair::random();
    let token = only_sender.token_for(&key, None).await;
    let body = json!({"amount": 5, "asset_code": "USDC", "funding_method": "SEPA"});
    let waiting = assert_waits_for_kyc(&post(&only_sender, &token, &body).await);
    assert_eq!(
        stored(&only_sender, &waiting).await.status,
        "pending_receiver"
    );
    let sender = register(
        &only_sender,
        &token,
        &[
            ("type", "phone-verified"),
            ("first_name", "Ana"),
            ("mobile_number", "+5511987654321"),
        ],
    )
    .await;
    let mut body = body;
    body["sender_id"] = json!(sender);
    let created = create_with(&only_sender, &token, &body).await;
    let row = stored(&only_sender, created["id"].as_str().unwrap()).await;
    assert_eq!(row.sender_id.as_deref(), Some(sender.as_str()));
    assert_eq!(row.receiver_id, None);
}

async fn sep31_15_lang_falls_back_to_english(db: Option<String>) {
    let app = spawn(
        db,
        "[sep31.assets.USDC.fields.purpose]\ndescription = \"why the money is sent\"\noptional = true\n\
         [sep31.assets.USDC.fields.purpose.translations]\npt = \"por que o dinheiro é enviado\"\n\
         [sep31.assets.USDC.fields.reference]\ndescription = \"a reference for the receiver\"\n\
         [sep31.assets.USDC.fields.reference.translations]\npt = \"uma referência para o destinatário\"\n",
    )
    .await;
    let (status, english) = info(&app, None).await;
    assert_eq!(status, 200);
    let described = |body: &Value, field: &str| {
        body["receive"]["USDC"]["fields"]["transaction"][field]["description"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(described(&english, "purpose"), "why the money is sent");
    // A language without a translation, or none at all, answers in English (AMB-33).
    for lang in ["en", "xx", "", "de-DE"] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("/sep31/info?lang={lang}"),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "lang={lang}: {body}");
        assert_eq!(body, english, "lang={lang} answers in English");
    }
    // A configured translation, also for a regional variant and in capitals.
    for lang in ["pt", "pt-BR", "PT"] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("/sep31/info?lang={lang}"),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "lang={lang}: {body}");
        assert_eq!(described(&body, "purpose"), "por que o dinheiro é enviado");
        assert_eq!(
            described(&body, "reference"),
            "uma referência para o destinatário"
        );
    }
    let s = sending_anchor(&app).await;
    // transaction_info_needed speaks the request's language too.
    let (status, body) = post(&app, &s.token, &s.body(json!({"lang": "pt"}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "transaction_info_needed");
    assert_eq!(
        body["fields"]["transaction"]["reference"]["description"],
        "uma referência para o destinatário"
    );
    let (_, body) = post(&app, &s.token, &s.body(json!({"lang": "de"}))).await;
    assert_eq!(
        body["fields"]["transaction"]["reference"]["description"],
        "a reference for the receiver"
    );
    create(
        &app,
        &s,
        json!({"lang": "pt", "fields": {"transaction": {"reference": "r-1"}}}),
    )
    .await;
    assert_error(
        &post(
            &app,
            &s.token,
            &s.body(json!({"lang": "de", "amount": "-1"})),
        )
        .await,
        400,
        "amount must be positive",
    );
    // Translations are checked when the configuration is read.
    for bad in ["\"p1\" = \"x\"", "pt = \"  \"", "\"\" = \"x\""] {
        let text = format!(
            "{}[sep31.assets.USDC.fields.purpose]\ndescription = \"why\"\n\
             [sep31.assets.USDC.fields.purpose.translations]\n{bad}\n",
            asset_toml("USDC")
        );
        let err = capstan::Config::from_parts(&text, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sep31.assets.USDC.fields.purpose.translations"),
            "{bad}: {err}"
        );
    }
}

// ---- §5.4 POST /transactions -------------------------------------------------------------------

async fn sep31_16_request_is_validated_with_useful_messages(db: Option<String>) {
    let app = spawn(db, "").await;
    let (issuer, _) = asset_of(&app, "USDC");
    let s = sending_anchor(&app).await;
    let other_issuer = g(&Keypair::random());
    let issuer_mismatch = format!("asset_issuer {other_issuer} does not issue the USDC");
    let cases: Vec<(Value, &str)> = vec![
        // The validator's two: no amount, no asset_code.
        (json!({"amount": null}), "amount is required"),
        (json!({"asset_code": null}), "asset_code is required"),
        (json!({"asset_code": ""}), "asset_code is required"),
        (json!({"amount": "lots"}), "is not a plain decimal number"),
        (json!({"asset_issuer": other_issuer}), &issuer_mismatch),
        (json!({"asset_issuer": "issuer"}), "asset_issuer issuer"),
        (
            json!({"sender_id": "1f0e9b1c-0000-4000-8000-000000000000"}),
            "sender_id 1f0e9b1c-0000-4000-8000-000000000000 is not a customer",
        ),
        (
            json!({"receiver_id": "nobody"}),
            "receiver_id nobody is not a customer",
        ),
        (
            json!({"fields": {"transaction": {"purpose": "gift"}}}),
            "fields.transaction.purpose is not a field this anchor asks for",
        ),
    ];
    for (extra, needle) in &cases {
        let body = s.body(extra.clone());
        assert_error(&post(&app, &s.token, &body).await, 400, needle);
    }
    // Nothing was stored for any of them.
    assert_eq!(count_transactions(&app.running.anchor.store).await, 0);
    // The right issuer is accepted, as is none.
    create(&app, &s, json!({"asset_issuer": issuer})).await;
    create(&app, &s, json!({"asset_issuer": null})).await;
}

async fn sep31_17_min_and_max_amount(db: Option<String>) {
    let app = spawn(
        db,
        "[sep31.assets.USDC]\nmin_amount = \"10\"\nmax_amount = 1000\n",
    )
    .await;
    let (_, info) = info(&app, None).await;
    assert_eq!(info["receive"]["USDC"]["min_amount"], json!(10));
    assert_eq!(info["receive"]["USDC"]["max_amount"], json!(1000));
    let s = sending_anchor(&app).await;
    assert_error(
        &post(&app, &s.token, &s.body(json!({"amount": "9.9999999"}))).await,
        400,
        "amount 9.9999999 is below the minimum of 10 USDC",
    );
    assert_error(
        &post(&app, &s.token, &s.body(json!({"amount": "1000.0000001"}))).await,
        400,
        "amount 1000.0000001 is above the maximum of 1000 USDC",
    );
    assert_error(
        &post(&app, &s.token, &s.body(json!({"amount": 5000}))).await,
        400,
        "above the maximum",
    );
    // The limits themselves are allowed.
    for amount in [json!("10"), json!(1000), json!("10.0000000"), json!(999.5)] {
        create(&app, &s, json!({ "amount": amount })).await;
    }
}

async fn sep31_18_funding_method_is_required_and_offered(db: Option<String>) {
    let app = spawn(
        db,
        "[sep31.assets.USDC]\nfunding_methods = [\"SEPA\", \"ACH\"]\n",
    )
    .await;
    let (_, info) = info(&app, None).await;
    assert_eq!(
        info["receive"]["USDC"]["funding_methods"],
        json!(["SEPA", "ACH"])
    );
    let s = sending_anchor(&app).await;
    for missing in [
        json!({"funding_method": null}),
        json!({"funding_method": ""}),
    ] {
        assert_error(
            &post(&app, &s.token, &s.body(missing)).await,
            400,
            "funding_method is required: one of SEPA, ACH",
        );
    }
    for wrong in ["SWIFT", "sepa", "CARD"] {
        assert_error(
            &post(&app, &s.token, &s.body(json!({"funding_method": wrong}))).await,
            400,
            &format!("funding_method {wrong} is not offered for USDC: use one of SEPA, ACH"),
        );
    }
    for method in ["SEPA", "ACH"] {
        let id = create(&app, &s, json!({"funding_method": method})).await;
        assert_eq!(stored(&app, &id).await.funding_method, method);
    }
}

async fn sep31_19_refund_memo_and_type_go_together(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let hash = BASE64.encode([7u8; 32]);
    let short_hash = BASE64.encode([7u8; 31]);
    let refused: Vec<(Value, &str)> = vec![
        (
            json!({"refund_memo": "123"}),
            "refund_memo and refund_memo_type go together",
        ),
        (
            json!({"refund_memo_type": "id"}),
            "refund_memo and refund_memo_type go together",
        ),
        (
            json!({"refund_memo": "123", "refund_memo_type": "number"}),
            "refund_memo_type \"number\" is not one of id, text, hash",
        ),
        (
            json!({"refund_memo": "abc", "refund_memo_type": "id"}),
            "refund_memo is not a valid id memo",
        ),
        (
            json!({"refund_memo": "-1", "refund_memo_type": "id"}),
            "refund_memo is not a valid id memo",
        ),
        (
            json!({"refund_memo": "18446744073709551616", "refund_memo_type": "id"}),
            "refund_memo is not a valid id memo",
        ),
        (
            json!({"refund_memo": 1.5, "refund_memo_type": "id"}),
            "refund_memo is not a valid id memo",
        ),
        (
            json!({"refund_memo": "x".repeat(29), "refund_memo_type": "text"}),
            "refund_memo is not a valid text memo",
        ),
        (
            // 15 two-byte characters: 30 bytes.
            json!({"refund_memo": "é".repeat(15), "refund_memo_type": "text"}),
            "refund_memo is not a valid text memo",
        ),
        (
            json!({"refund_memo": short_hash, "refund_memo_type": "hash"}),
            "refund_memo is not a valid hash memo",
        ),
        (
            json!({"refund_memo": "not base64!", "refund_memo_type": "hash"}),
            "refund_memo is not a valid hash memo",
        ),
        (
            json!({"refund_memo": hex::encode([7u8; 32]), "refund_memo_type": "hash"}),
            "refund_memo is not a valid hash memo",
        ),
    ];
    for (extra, needle) in refused {
        assert_error(&post(&app, &s.token, &s.body(extra)).await, 400, needle);
    }
    let accepted: Vec<(Value, &str, &str)> = vec![
        (
            json!({"refund_memo": "18446744073709551615", "refund_memo_type": "id"}),
            "18446744073709551615",
            "id",
        ),
        (
            json!({"refund_memo": 42, "refund_memo_type": "id"}),
            "42",
            "id",
        ),
        (
            json!({"refund_memo": "x".repeat(28), "refund_memo_type": "text"}),
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "text",
        ),
        (
            json!({"refund_memo": "é".repeat(14), "refund_memo_type": "text"}),
            "éééééééééééééé",
            "text",
        ),
        (
            json!({"refund_memo": hash, "refund_memo_type": "hash"}),
            hash.as_str(),
            "hash",
        ),
    ];
    for (extra, memo, kind) in accepted {
        let id = create(&app, &s, extra).await;
        let row = stored(&app, &id).await;
        assert_eq!(row.refund_memo.as_deref(), Some(memo));
        assert_eq!(row.refund_memo_type.as_deref(), Some(kind));
    }
    // Neither: nothing stored.
    let id = create(&app, &s, json!({})).await;
    let row = stored(&app, &id).await;
    assert_eq!((row.refund_memo, row.refund_memo_type), (None, None));
}

async fn sep31_20_customers_are_required_and_accepted(db: Option<String>) {
    let app = spawn_with(db, "review = \"manual\"", "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let one = app.token_for(&key, Some("1")).await;
    let two = app.token_for(&key, Some("2")).await;
    let three = app.token_for(&key, Some("3")).await;
    let sender = register(&app, &one, SENDER).await;
    let receiver = register(&app, &two, RECEIVER).await;
    // Only some of the sender fields: NEEDS_INFO for sep31-sender.
    let partial = register(&app, &three, &SENDER[..2]).await;
    let body = |sender: Option<&str>, receiver: Option<&str>| {
        let mut body = json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"});
        if let Some(id) = sender {
            body["sender_id"] = json!(id);
        }
        if let Some(id) = receiver {
            body["receiver_id"] = json!(id);
        }
        body
    };
    // Missing ids: the asynchronous KYC flow (SEP-31 3.0), not an error.
    assert_waits_for_kyc(&post(&app, &token, &body(None, None)).await);
    // A customer that is named must be ACCEPTED, even when the other is left for later.
    assert_customer_info_needed(
        &post(&app, &token, &body(None, Some(&receiver))).await,
        "sep31-receiver",
    );
    // Known but not ACCEPTED: PROCESSING (manual review) and NEEDS_INFO.
    assert_customer_info_needed(
        &post(&app, &token, &body(Some(&sender), Some(&receiver))).await,
        "sep31-sender",
    );
    for id in [&sender, &receiver] {
        let (status, answer) = admin(
            &app,
            Method::POST,
            &format!("/admin/customers/{id}/accept"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_customer_info_needed(
        &post(&app, &token, &body(Some(&partial), Some(&receiver))).await,
        "sep31-sender",
    );
    // An accepted sender and no receiver: the receiver is registered later.
    assert_waits_for_kyc(&post(&app, &token, &body(Some(&sender), None)).await);
    assert_waits_for_kyc(&post(&app, &token, &body(Some(&sender), Some(""))).await);
    // Accepted as a sender is not accepted as a receiver: the status is per type.
    assert_customer_info_needed(
        &post(&app, &token, &body(Some(&sender), Some(&sender))).await,
        "sep31-receiver",
    );
    let created = create_with(&app, &token, &body(Some(&sender), Some(&receiver))).await;
    let row = stored(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(row.sender_id.as_deref(), Some(sender.as_str()));
    assert_eq!(row.receiver_id.as_deref(), Some(receiver.as_str()));
    // Rejected again: no longer usable.
    let (status, answer) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{receiver}/reject"),
        Some(json!({"reason": "account closed"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_customer_info_needed(
        &post(&app, &token, &body(Some(&sender), Some(&receiver))).await,
        "sep31-receiver",
    );
}

async fn sep31_21_destination_asset_is_refused_without_sep38(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    for asset in ["iso4217:BRL", "iso4217:USD", "stellar:USDC"] {
        assert_error(
            &post(&app, &s.token, &s.body(json!({"destination_asset": asset}))).await,
            400,
            &format!("destination_asset {asset}: this anchor offers no asset conversion"),
        );
    }
}

async fn sep31_22_quote_id_is_refused_without_sep38(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    assert_error(
        &post(
            &app,
            &s.token,
            &s.body(json!({"quote_id": "de762cda-a193-4961-861e-57b31fed6eb3"})),
        )
        .await,
        400,
        "quote_id: this anchor offers no quotes",
    );
}

async fn sep31_23_quotes_are_never_required(db: Option<String>) {
    let app = spawn(db, "").await;
    let (_, info) = info(&app, None).await;
    assert_eq!(info["receive"]["USDC"]["quotes_required"], json!(false));
    let s = sending_anchor(&app).await;
    create(&app, &s, json!({})).await;
    create(&app, &s, json!({"quote_id": "", "destination_asset": null})).await;
}

async fn sep31_24_record_is_persistent_and_reachable(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("db").display()));
    let app = spawn(Some(url.clone()), "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({"amount": "12.5"})).await;
    let before = transaction(&app, &s.token, &id).await;
    assert_eq!(before["id"], id.as_str());
    let common::TestApp { running, .. } = app;
    running.shutdown().await;

    // Another anchor process on the same database: the transaction is still there.
    let again = spawn(Some(url), "").await;
    let token = again.token_for(&s.key, None).await;
    assert_eq!(transaction(&again, &token, &id).await, before);
}

async fn sep31_25_starts_pending_sender_with_the_payment_details(db: Option<String>) {
    let app = spawn(db, &asset_toml("USDC")).await;
    let (_, distribution) = asset_of(&app, "USDC");
    let s = sending_anchor(&app).await;
    let created = create_with(&app, &s.token, &s.body(json!({}))).await;
    // Exactly the four keys deployed validators allow (AMB-07).
    assert_eq!(
        keys(&created),
        [
            "id",
            "stellar_account_id",
            "stellar_memo",
            "stellar_memo_type"
        ]
    );
    assert!(!created["id"].as_str().unwrap().is_empty());
    assert_eq!(created["stellar_account_id"], distribution.as_str());
    assert!(PublicKey::from_strkey(created["stellar_account_id"].as_str().unwrap()).is_ok());
    assert_eq!(created["stellar_memo_type"], "id");
    let t = transaction(&app, &s.token, created["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "pending_sender");
    for key in ["stellar_account_id", "stellar_memo_type", "stellar_memo"] {
        assert_eq!(t[key], created[key], "{key}");
    }
}

async fn sep31_26_each_transaction_gets_a_unique_memo(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let mut memos = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for _ in 0..25 {
        let created = create_with(&app, &s.token, &s.body(json!({}))).await;
        let memo = created["stellar_memo"].as_str().unwrap().to_owned();
        // A decimal id memo, 0 < memo < 2^63 (AMB-25, AMB-27), written canonically.
        let n: u64 = memo.parse().unwrap();
        assert!(n > 0 && n < 1 << 63, "{memo}");
        assert_eq!(n.to_string(), memo);
        assert!(memos.insert(memo), "memo reused");
        assert!(ids.insert(created["id"].as_str().unwrap().to_owned()));
    }
    // The database holds one transaction per memo whatever the caller does.
    let store = &app.running.anchor.store;
    let first = stored(&app, ids.first().unwrap()).await;
    let mut copy = first.clone();
    copy.id = "same-memo-copy".into();
    assert!(!store.insert_transaction(&copy, "test").await.unwrap());
    assert!(store.transaction("same-memo-copy").await.unwrap().is_none());
    assert!(
        store
            .transaction_events("same-memo-copy")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sep31_27_deprecated_fields_are_validated(db: Option<String>) {
    let app = spawn(
        db.clone(),
        r#"
[sep31.assets.USDC.fields.receiver_routing_number]
description = "routing number of the receiver's bank"

[sep31.assets.USDC.fields.receiver_account_type]
description = "type of the receiver's account"
choices = ["checking", "savings"]

[sep31.assets.USDC.fields.reference]
description = "a reference for the receiver"
optional = true
"#,
    )
    .await;
    let (_, info) = info(&app, None).await;
    let routing =
        json!({"description": "routing number of the receiver's bank", "optional": false});
    let account_type = json!({
        "description": "type of the receiver's account",
        "optional": false,
        "choices": ["checking", "savings"],
    });
    assert_eq!(
        info["receive"]["USDC"]["fields"],
        json!({"transaction": {
            "receiver_routing_number": routing,
            "receiver_account_type": account_type,
            "reference": {"description": "a reference for the receiver", "optional": true},
        }})
    );
    let s = sending_anchor(&app).await;
    // Missing required fields: transaction_info_needed naming exactly those.
    assert_eq!(
        post(&app, &s.token, &s.body(json!({}))).await,
        (
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {
                "receiver_routing_number": routing,
                "receiver_account_type": account_type,
            }}})
        )
    );
    assert_eq!(
        post(
            &app,
            &s.token,
            &s.body(json!({"fields": {"transaction": {"receiver_account_type": "savings"}}}))
        )
        .await,
        (
            400,
            json!({"error": "transaction_info_needed", "fields": {"transaction": {
                "receiver_routing_number": routing,
            }}})
        )
    );
    let refused: Vec<(Value, &str)> = vec![
        (
            json!({"receiver_routing_number": "1", "receiver_account_type": "savings", "color": "red"}),
            "fields.transaction.color is not a field this anchor asks for",
        ),
        (
            json!({"receiver_routing_number": "1", "receiver_account_type": "brokerage"}),
            "fields.transaction.receiver_account_type must be one of checking, savings",
        ),
        (
            json!({"receiver_routing_number": 1, "receiver_account_type": "savings"}),
            "fields.transaction.receiver_routing_number must be a string",
        ),
    ];
    for (fields, needle) in refused {
        assert_error(
            &post(
                &app,
                &s.token,
                &s.body(json!({"fields": {"transaction": fields}})),
            )
            .await,
            400,
            needle,
        );
    }
    assert_error(
        &post(&app, &s.token, &s.body(json!({"fields": "routing=1"}))).await,
        400,
        "fields must be an object",
    );
    assert_error(
        &post(
            &app,
            &s.token,
            &s.body(json!({"fields": {"transaction": [1]}})),
        )
        .await,
        400,
        "fields.transaction must be an object",
    );
    let given =
        json!({"receiver_routing_number": "021000021", "receiver_account_type": "checking"});
    let id = create(&app, &s, json!({"fields": {"transaction": given}})).await;
    let stored_fields: Value = serde_json::from_str(&stored(&app, &id).await.fields).unwrap();
    assert_eq!(stored_fields, given);

    // Without configured fields, `fields` may be absent, empty, or null (AMB-05); unknown
    // names are still refused.
    let plain = spawn(db, "").await;
    let p = sending_anchor(&plain).await;
    create(&plain, &p, json!({})).await;
    create(&plain, &p, json!({"fields": {"transaction": {}}})).await;
    create(&plain, &p, json!({"fields": {}})).await;
    assert_error(
        &post(
            &plain,
            &p.token,
            &p.body(json!({"fields": {"transaction": {"receiver_routing_number": "1"}}})),
        )
        .await,
        400,
        "fields.transaction.receiver_routing_number is not a field this anchor asks for",
    );
}

async fn sep31_28_post_without_a_token_is_403(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    assert_error(
        &call(
            &app,
            Method::POST,
            "/sep31/transactions",
            None,
            Some(&s.body(json!({}))),
        )
        .await,
        403,
        "missing Authorization header",
    );
    // Even an otherwise empty request is refused for its missing token first.
    assert_eq!(
        call(&app, Method::POST, "/sep31/transactions", None, None)
            .await
            .0,
        403
    );
}

// ---- §5.5 GET /transactions/:id ------------------------------------------------------------

async fn sep31_29_get_returns_the_wrapped_transaction(db: Option<String>) {
    let app = spawn(
        db,
        &format!(
            "{}[sep31.assets.USDC]\nfee_fixed = \"0.5\"\nfee_percent = \"1.5\"\n",
            asset_toml("USDC")
        ),
    )
    .await;
    let (issuer, distribution) = asset_of(&app, "USDC");
    let s = sending_anchor(&app).await;
    let before = unix_now();
    let created = create_with(&app, &s.token, &s.body(json!({"amount": 200}))).await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = get_tx(&app, &s.token, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body), ["transaction"], "only the wrapper: {body}");
    let t = &body["transaction"];
    assert_eq!(
        keys(t),
        [
            "amount_fee",
            "amount_in",
            "amount_out",
            "fee_details",
            "id",
            "started_at",
            "status",
            "stellar_account_id",
            "stellar_memo",
            "stellar_memo_type",
            "updated_at",
        ],
        "{t}"
    );
    assert_eq!(t["id"], id);
    assert_eq!(t["status"], "pending_sender");
    assert_eq!(t["amount_in"], "200");
    assert_eq!(t["amount_fee"], "3.5");
    assert_eq!(t["amount_out"], "196.5");
    assert_eq!(
        t["fee_details"],
        json!({
            "total": "3.5",
            "asset": format!("stellar:USDC:{issuer}"),
            "details": [
                {"name": "fixed fee", "amount": "0.5"},
                {"name": "percentage fee", "description": "1.5% of the amount", "amount": "3"},
            ],
        })
    );
    assert_eq!(t["stellar_account_id"], distribution.as_str());
    assert_eq!(t["stellar_memo_type"], "id");
    assert_eq!(t["stellar_memo"], created["stellar_memo"]);
    let started = iso(&t["started_at"]);
    assert!(started >= before && started <= unix_now(), "{t}");
    assert_eq!(iso(&t["updated_at"]), started);
}

async fn sep31_30_unknown_or_foreign_transaction_is_404(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    for unknown in [
        "de762cda-a193-4961-861e-57b31fed6eb3",
        "1",
        "pending_sender",
    ] {
        assert_error(
            &get_tx(&app, &s.token, unknown).await,
            404,
            &format!("transaction not found: {unknown}"),
        );
    }
    // Another sending anchor's transaction looks exactly like an unknown one (AMB-34).
    let other = sending_anchor(&app).await;
    assert_eq!(
        get_tx(&app, &other.token, &id).await,
        (
            404,
            json!({"error": format!("transaction not found: {id}")})
        )
    );
}

async fn sep31_31_no_sep38_asset_ids_without_quotes(db: Option<String>) {
    let app = spawn(db, "[sep31.assets.USDC]\nfee_percent = 1\n").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let t = transaction(&app, &s.token, &id).await;
    for key in [
        "amount_in_asset",
        "amount_out_asset",
        "amount_fee_asset",
        "quote_id",
    ] {
        assert!(t.get(key).is_none(), "{key} without a quote: {t}");
    }
}

async fn sep31_32_amounts_and_fees_add_up(db: Option<String>) {
    // (fee_fixed, fee_percent, amount, expected fee)
    let cases = [
        ("0", "0", "100", "0"),
        ("1", "0", "100", "1"),
        ("0", "2.5", "10.0000002", "0.25"),
        ("0.5", "1.5", "100", "2"),
        // 0.5 + 1.5% of 33.3333333 = 0.9999999995: rounded half away from zero to stroops.
        ("0.5", "1.5", "33.3333333", "1"),
        ("0", "1", "0.00005", "0.0000005"),
        // 1% of 0.000005 is half a stroop: rounded away from zero.
        ("0", "1", "0.000005", "0.0000001"),
        ("0", "99.9999999", "1000", "999.999999"),
        ("5", "0", "5.0000001", "5"),
    ];
    for (fixed, percent, amount, fee) in cases {
        let app = spawn(
            db.clone(),
            &format!("[sep31.assets.USDC]\nfee_fixed = \"{fixed}\"\nfee_percent = \"{percent}\"\n"),
        )
        .await;
        let s = sending_anchor(&app).await;
        let id = create(&app, &s, json!({ "amount": amount })).await;
        let t = transaction(&app, &s.token, &id).await;
        let what = format!("{fixed} + {percent}% of {amount}: {t}");
        // amount_in is the gross amount sent (AMB-31).
        assert_eq!(
            dec(&t["amount_in"]),
            Decimal::from_str(amount).unwrap(),
            "{what}"
        );
        assert_eq!(
            dec(&t["amount_fee"]),
            Decimal::from_str(fee).unwrap(),
            "{what}"
        );
        assert_eq!(
            dec(&t["amount_out"]),
            dec(&t["amount_in"]) - dec(&t["amount_fee"]),
            "{what}"
        );
        assert_eq!(t["fee_details"]["total"], t["amount_fee"], "{what}");
        match t["fee_details"].get("details") {
            // No fee: no breakdown (AMB-29: fee_details itself is always there).
            None => assert_eq!(dec(&t["amount_fee"]), Decimal::ZERO, "{what}"),
            Some(details) => {
                let sum: Decimal = details
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| dec(&d["amount"]))
                    .sum();
                assert_eq!(sum, dec(&t["amount_fee"]), "{what}");
            }
        }
        for key in ["amount_in", "amount_out", "amount_fee"] {
            let text = t[key].as_str().unwrap();
            assert!(
                !text.contains('e') && !text.contains('E'),
                "{key} {text} is plain decimal"
            );
        }
    }
    // A fee that leaves nothing to pay out is refused.
    let app = spawn(db, "[sep31.assets.USDC]\nfee_fixed = 5\n").await;
    let s = sending_anchor(&app).await;
    for amount in ["5", "4", "0.0000001"] {
        assert_error(
            &post(&app, &s.token, &s.body(json!({ "amount": amount }))).await,
            400,
            &format!("amount {amount} does not cover the fee of 5 USDC"),
        );
    }
}

// ---- §5.6 status machine --------------------------------------------------------------------

async fn sep31_33_new_transaction_starts_pending_sender(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    assert_eq!(
        transaction(&app, &s.token, &id).await["status"],
        "pending_sender"
    );
    let events = app
        .running
        .anchor
        .store
        .transaction_events(&id)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].from_status, None);
    assert_eq!(events[0].to_status, "pending_sender");
    assert_eq!(events[0].actor, format!("sending_anchor:{}", g(&s.key)));
    let row = stored(&app, &id).await;
    assert!(!row.paid);
    assert_eq!(row.version, 0);
}

async fn sep31_37_transaction_info_update_describes_the_fields(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    let updates = json!({"transaction": {
        "receiver_account_number": {"description": "the receiver's IBAN was refused"},
    }});
    ask_for_fields(&app, &id, updates.clone()).await;
    let t = transaction(&app, &s.token, &id).await;
    assert_eq!(t["status"], "pending_transaction_info_update");
    // The same {"transaction": {...}} format as /info fields (AMB-32).
    assert_eq!(t["required_info_updates"], updates);
    assert_eq!(
        t["required_info_message"],
        "the receiver's bank rejected the account"
    );
}

async fn sep31_38_customer_info_update_shows_needs_info(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    // The receiver's data is asked for first, so the transaction never waits on customers
    // who are all ACCEPTED (it would be resumed at once).
    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{}/request-info", s.receiver),
        Some(json!({"fields": {"bank_account_number": "the bank refused this account number"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    step(&app, &id, Status::PendingCustomerInfoUpdate, |t| {
        t.status_message = Some("the receiver's bank refused the account number".into())
    })
    .await;
    let t = transaction(&app, &s.token, &id).await;
    assert_eq!(t["status"], "pending_customer_info_update");
    assert_eq!(
        t["status_message"],
        "the receiver's bank refused the account number"
    );
    let (status, customer) = kyc_get(
        &app,
        &s.token,
        &[("transaction_id", &id), ("type", "sep31-receiver")],
    )
    .await;
    assert_eq!(status, 200, "{customer}");
    assert_eq!(customer["id"], s.receiver.as_str());
    assert_eq!(customer["status"], "NEEDS_INFO", "{customer}");
    assert!(
        customer["fields"]["bank_account_number"].is_object(),
        "{customer}"
    );
    let provided = &customer["provided_fields"];
    assert_eq!(
        provided["bank_account_number"]["status"], "REJECTED",
        "{customer}"
    );
    assert_eq!(
        provided["bank_account_number"]["error"],
        "the bank refused this account number"
    );
    for name in ["first_name", "last_name", "email_address", "bank_number"] {
        assert_eq!(provided[name]["status"], "ACCEPTED", "{name}: {customer}");
    }
}

async fn sep31_40_refunded_transaction_carries_refunds(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({"amount": "100"})).await;
    paid(&app, &id).await;
    let refunds = json!({
        "amount_refunded": "100",
        "amount_fee": "0",
        "payments": [{"id": "b9d0b2292c4e09e8eb22d036171491e87b8d2086bf8b265874c8d182cb9c9020", "amount": "100", "fee": "0"}],
    });
    let text = refunds.to_string();
    step(&app, &id, Status::Refunded, move |t| {
        t.refunds = Some(text.clone())
    })
    .await;
    let t = transaction(&app, &s.token, &id).await;
    assert_eq!(t["status"], "refunded");
    assert_eq!(t["refunds"], refunds);
    // Finished: nothing follows, and a GET still answers.
    let refused = app
        .running
        .anchor
        .store
        .transition(
            &id,
            Status::Completed,
            "test",
            None,
            |_| {},
            |_| String::new(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(transaction(&app, &s.token, &id).await, t);
}

async fn sep31_41_refund_memo_is_kept_for_the_refund(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(
        &app,
        &s,
        json!({"refund_memo": "refund-4711", "refund_memo_type": "text"}),
    )
    .await;
    let row = paid(&app, &id).await;
    assert_eq!(row.refund_memo.as_deref(), Some("refund-4711"));
    assert_eq!(row.refund_memo_type.as_deref(), Some("text"));
    assert_eq!(stored(&app, &id).await, row);
}

// ---- §5.7 PATCH (deprecated) ------------------------------------------------------------------

async fn sep31_45_patch_is_refused_when_nothing_was_requested(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let body =
        json!({"fields": {"transaction": {"receiver_account_number": "DE89370400440532013000"}}});
    assert_error(
        &patch(&app, &s.token, &id, &body).await,
        400,
        "no update was requested: the transaction is pending_sender",
    );
    paid(&app, &id).await;
    let before = stored(&app, &id).await;
    assert_error(
        &patch(&app, &s.token, &id, &body).await,
        400,
        "no update was requested: the transaction is pending_receiver",
    );
    assert_eq!(stored(&app, &id).await, before, "nothing changed");
}

async fn sep31_46_patch_updates_the_requested_fields(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    ask_for_fields(
        &app,
        &id,
        json!({"transaction": {
            "receiver_account_number": {"description": "the receiver's IBAN"},
            "receiver_note": {"description": "a note for the receiver", "optional": true},
        }}),
    )
    .await;
    let before = stored(&app, &id).await;
    let refused: Vec<(Value, &str)> = vec![
        (
            json!({"fields": {"transaction": {"receiver_account_number": "DE89", "color": "red"}}}),
            "fields.transaction.color was not asked for",
        ),
        (
            json!({"fields": {"transaction": {"receiver_note": "thanks"}}}),
            "fields.transaction is missing receiver_account_number",
        ),
        (
            json!({"fields": {"transaction": {"receiver_account_number": 89}}}),
            "fields.transaction.receiver_account_number must be a string",
        ),
        (
            json!({"receiver_account_number": "DE89"}),
            "send {\"fields\": {\"transaction\"",
        ),
        (
            json!({"fields": {"transaction": "DE89"}}),
            "send {\"fields\"",
        ),
    ];
    for (body, needle) in refused {
        assert_error(&patch(&app, &s.token, &id, &body).await, 400, needle);
        assert_eq!(stored(&app, &id).await, before, "refused: nothing changed");
    }
    // Other sending anchors and unknown ids: 404.
    let other = sending_anchor(&app).await;
    let good =
        json!({"fields": {"transaction": {"receiver_account_number": "DE89370400440532013000"}}});
    assert_error(
        &patch(&app, &other.token, &id, &good).await,
        404,
        "transaction not found",
    );
    assert_error(
        &patch(&app, &s.token, "no-such-transaction", &good).await,
        404,
        "transaction not found",
    );

    let (status, body) = patch(&app, &s.token, &id, &good).await;
    assert_eq!(status, 200, "{body}");
    // The GET body, with the status back at pending_receiver and the request cleared.
    assert_eq!(get_tx(&app, &s.token, &id).await, (200, body.clone()));
    let t = &body["transaction"];
    assert_eq!(t["status"], "pending_receiver");
    assert!(t.get("required_info_updates").is_none(), "{t}");
    assert!(t.get("required_info_message").is_none(), "{t}");
    let row = stored(&app, &id).await;
    let fields: Value = serde_json::from_str(&row.fields).unwrap();
    assert_eq!(fields["receiver_account_number"], "DE89370400440532013000");
    let events = app
        .running
        .anchor
        .store
        .transaction_events(&id)
        .await
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.from_status.as_deref(), last.to_status.as_str()),
        (Some("pending_transaction_info_update"), "pending_receiver")
    );
    assert_eq!(last.actor, format!("sending_anchor:{}", g(&s.key)));
    // Nothing is asked for any more.
    assert_error(
        &patch(&app, &s.token, &id, &good).await,
        400,
        "no update was requested",
    );
}

// ---- §5.8 SEP-12 interplay -------------------------------------------------------------------

async fn sep31_47_kyc_for_a_transaction_is_validated(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let (status, body) = kyc_put(
        &app,
        &s.token,
        &[
            ("transaction_id", &id),
            ("type", "sep31-sender"),
            ("email_address", "not an email"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("email_address"),
        "{body}"
    );
    // The customer kept its accepted value.
    let (_, customer) = kyc_get(
        &app,
        &s.token,
        &[("transaction_id", &id), ("type", "sep31-sender")],
    )
    .await;
    assert_eq!(customer["status"], "ACCEPTED", "{customer}");
}

async fn sep31_48_customers_are_reached_through_the_transaction(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    // Any token of the sending anchor reaches both customers, whatever memo registered them.
    let memo_token = app.token_for(&s.key, Some("1")).await;
    for token in [&s.token, &memo_token] {
        for (kind, customer) in [("sep31-sender", &s.sender), ("sep31-receiver", &s.receiver)] {
            let (status, body) =
                kyc_get(&app, token, &[("transaction_id", &id), ("type", kind)]).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["id"], customer.as_str(), "{kind}");
            assert_eq!(body["status"], "ACCEPTED", "{kind}: {body}");
        }
    }
    // A PUT through the transaction updates that customer.
    let (status, body) = kyc_put(
        &app,
        &memo_token,
        &[
            ("transaction_id", &id),
            ("type", "sep31-receiver"),
            ("last_name", "Souza"),
        ],
    )
    .await;
    assert_eq!((status, body), (202, json!({"id": s.receiver})));
    let (_, detail) = admin(
        &app,
        Method::GET,
        &format!("/admin/customers/{}", s.receiver),
        None,
    )
    .await;
    assert_eq!(detail["fields"]["last_name"]["value"], "Souza", "{detail}");

    // A type that is neither party's: 400; an unknown type: 400.
    let (status, body) = kyc_get(
        &app,
        &s.token,
        &[("transaction_id", &id), ("type", "phone-verified")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is neither the sender type"),
        "{body}"
    );
    let (status, _) = kyc_get(
        &app,
        &s.token,
        &[("transaction_id", &id), ("type", "sep31-nobody")],
    )
    .await;
    assert_eq!(status, 400);
    // Another sending anchor's transaction, and an unknown one: 404.
    let other = sending_anchor(&app).await;
    for (token, tx) in [
        (&other.token, id.as_str()),
        (&s.token, "no-such-transaction"),
    ] {
        for kind in ["sep31-sender", "sep31-receiver"] {
            let (status, body) =
                kyc_get(&app, token, &[("transaction_id", tx), ("type", kind)]).await;
            assert_eq!(status, 404, "{body}");
            let (status, body) = kyc_put(
                &app,
                token,
                &[("transaction_id", tx), ("type", kind), ("last_name", "X")],
            )
            .await;
            assert_eq!(status, 404, "{body}");
        }
    }
}

async fn sep31_49_customer_info_update_is_put_until_accepted(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{}/request-info", s.sender),
        Some(json!({"fields": {"last_name": "does not match the ID document"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    step(&app, &id, Status::PendingCustomerInfoUpdate, |_| {}).await;
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=kyc").await;
    assert_eq!(
        put_callback(&app, &s.token, &id, &json!({ "url": url }))
            .await
            .0,
        204
    );
    let query = [("transaction_id", id.as_str()), ("type", "sep31-sender")];
    let (_, customer) = kyc_get(&app, &s.token, &query).await;
    assert_eq!(customer["status"], "NEEDS_INFO", "{customer}");
    assert!(customer["fields"]["last_name"].is_object(), "{customer}");
    assert_eq!(
        customer["provided_fields"]["last_name"]["status"],
        "REJECTED"
    );
    // A corrected value, through the transaction: ACCEPTED again.
    let (status, body) = kyc_put(
        &app,
        &s.token,
        &[
            ("transaction_id", &id),
            ("type", "sep31-sender"),
            ("last_name", "Silva Santos"),
        ],
    )
    .await;
    assert_eq!((status, body), (202, json!({"id": s.sender})));
    let (_, customer) = kyc_get(&app, &s.token, &query).await;
    assert_eq!(customer["status"], "ACCEPTED", "{customer}");
    // Every customer ACCEPTED again: the transaction is back to pending_receiver
    // (SEP31-39), and the sending anchor hears of it.
    let t = transaction(&app, &s.token, &id).await;
    assert_eq!(t["status"], "pending_receiver", "{t}");
    let got = recorder.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json_body(), json!({ "transaction": t }));
    let events = app
        .running
        .anchor
        .store
        .transaction_events(&id)
        .await
        .unwrap();
    let statuses: Vec<&str> = events.iter().map(|e| e.to_status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "pending_sender",
            "pending_receiver",
            "pending_customer_info_update",
            "pending_receiver"
        ]
    );
}

// ---- §5.9 callbacks -----------------------------------------------------------------------------

async fn sep31_44_no_callback_for_the_initial_status(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=initial").await;
    assert_eq!(
        put_callback(&app, &s.token, &id, &json!({ "url": url })).await,
        (204, Value::Null)
    );
    assert_eq!(
        stored(&app, &id).await.callback_url.as_deref(),
        Some(url.as_str())
    );
    app.running.anchor.outbox_wake.notify_one();
    recorder.stays_at(0, Duration::from_millis(1500)).await;
    paid(&app, &id).await;
    let got = recorder.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].json_body()["transaction"]["status"],
        "pending_receiver"
    );
    recorder.stays_at(1, Duration::from_millis(500)).await;
}

async fn sep31_50_a_later_callback_url_replaces_the_first(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let (first, second) = (Recorder::default(), Recorder::default());
    let first_url = first.start("/sep31/callback?anchor=first").await;
    let second_url = second.start("/sep31/callback?anchor=second").await;
    for url in [&first_url, &second_url] {
        assert_eq!(
            put_callback(&app, &s.token, &id, &json!({ "url": url })).await,
            (204, Value::Null)
        );
    }
    paid(&app, &id).await;
    let got = second.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].uri.query(), Some("anchor=second"));
    first.stays_at(0, Duration::from_millis(800)).await;
    second.stays_at(1, Duration::from_millis(1)).await;
}

async fn sep31_51_every_status_change_posts_the_get_body(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=every").await;
    assert_eq!(
        put_callback(&app, &s.token, &id, &json!({ "url": url }))
            .await
            .0,
        204
    );
    // Each change, then the GET body as it is right after it.
    let mut expected = Vec::new();
    paid(&app, &id).await;
    recorder.wait_for(1, Duration::from_secs(10)).await;
    expected.push(get_tx(&app, &s.token, &id).await.1);
    ask_for_fields(
        &app,
        &id,
        json!({"transaction": {"receiver_account_number": {"description": "IBAN"}}}),
    )
    .await;
    recorder.wait_for(2, Duration::from_secs(10)).await;
    expected.push(get_tx(&app, &s.token, &id).await.1);
    // A PATCH is a status change too.
    let (status, patched) = patch(
        &app,
        &s.token,
        &id,
        &json!({"fields": {"transaction": {"receiver_account_number": "DE89370400440532013000"}}}),
    )
    .await;
    assert_eq!(status, 200);
    recorder.wait_for(3, Duration::from_secs(10)).await;
    expected.push(patched);
    step(&app, &id, Status::Error, |t| {
        t.status_message = Some("the receiver's bank is unreachable".into())
    })
    .await;
    recorder.wait_for(4, Duration::from_secs(10)).await;
    expected.push(get_tx(&app, &s.token, &id).await.1);

    let got = recorder.all();
    let bodies: Vec<Value> = got.iter().map(Delivery::json_body).collect();
    // The wrapped GET body (AMB-30), in order, one per change.
    assert_eq!(bodies, expected);
    let statuses: Vec<&str> = bodies
        .iter()
        .map(|b| b["transaction"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending_receiver",
            "pending_transaction_info_update",
            "pending_receiver",
            "error"
        ]
    );
    // A refused change posts nothing.
    let refused = app
        .running
        .anchor
        .store
        .transition(
            &id,
            Status::Completed,
            "test",
            None,
            |_| {},
            |t| transaction_body(t).to_string(),
        )
        .await;
    assert!(refused.is_err());
    app.running.anchor.outbox_wake.notify_one();
    recorder.stays_at(4, Duration::from_millis(800)).await;
}

async fn sep31_52_53_54_callbacks_are_signed_with_the_signing_key(db: Option<String>) {
    let app = spawn(db, "").await;
    let toml = stellar_toml(&app).await;
    let signing_key =
        PublicKey::from_strkey(toml["SIGNING_KEY"].as_str().expect("SIGNING_KEY")).unwrap();
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=signed").await;
    let signed_host = callbacks::signed_host(&url);
    assert_eq!(
        put_callback(&app, &s.token, &id, &json!({ "url": url }))
            .await
            .0,
        204
    );
    paid(&app, &id).await;
    let delivery = &recorder.wait_for(1, Duration::from_secs(10)).await[0];
    // A POST with the same value in the deprecated header, fresh as the receiver checks it
    // (SEP31-54), signed over `<t>.<host:port>.<body>` with SIGNING_KEY.
    let body = callbacks::verified(delivery, &signing_key, &url);
    let (ts, signature) = callbacks::signature_of(delivery);
    assert_eq!(signature.len(), 64);
    // Host without the port, another host, another body: no.
    for wrong in [
        format!("{ts}.127.0.0.1.{}", delivery.body),
        format!("{ts}.sendinganchor.example.{}", delivery.body),
        format!("{}.{signed_host}.{}", ts + 1, delivery.body),
        format!("{ts}.{signed_host}.{} ", delivery.body),
    ] {
        assert!(!signing_key.verify(wrong.as_bytes(), &signature), "{wrong}");
    }
    assert_eq!(body["transaction"]["id"], id.as_str());
}

async fn sep31_55_a_refused_callback_is_retried(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let recorder = Recorder::default();
    // The sending anchor refuses the first delivery (a 400 means "invalid callback").
    recorder.answer_next(400);
    let url = recorder.start("/sep31/callback?anchor=retry").await;
    assert_eq!(
        put_callback(&app, &s.token, &id, &json!({ "url": url }))
            .await
            .0,
        204
    );
    paid(&app, &id).await;
    let got = recorder.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].body, got[1].body, "the same callback again");
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_secs(1),
        "after a backoff"
    );
    recorder.stays_at(2, Duration::from_millis(1500)).await;
}

// ---- expiry -----------------------------------------------------------------------------------

async fn expiry_unpaid_transactions_expire_after_the_timeout(db: Option<String>) {
    let app = spawn(db, "[sep31]\npayment_timeout_secs = 60\n").await;
    let s = sending_anchor(&app).await;
    let overdue = create(&app, &s, json!({})).await;
    let not_yet = create(&app, &s, json!({})).await;
    let paid_late = create(&app, &s, json!({})).await;
    let row = stored(&app, &overdue).await;
    assert_eq!(row.expires_at, Some(row.started_at + 60));
    paid(&app, &paid_late).await;
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=expiry").await;
    assert_eq!(
        put_callback(&app, &s.token, &overdue, &json!({ "url": url }))
            .await
            .0,
        204
    );
    let store = &app.running.anchor.store;
    let past = unix_now() - 1;
    set_column(store, "expires_at", &overdue, past).await;
    set_column(store, "expires_at", &paid_late, past).await;
    let untouched = stored(&app, &paid_late).await;

    capstan::sep31::expiry::expire_overdue(&app.running.anchor).await;
    let t = transaction(&app, &s.token, &overdue).await;
    assert_eq!(t["status"], "expired");
    assert_eq!(
        t["status_message"],
        "no payment arrived before the transaction expired"
    );
    let events = store.transaction_events(&overdue).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (
            events[1].from_status.as_deref(),
            events[1].to_status.as_str(),
            events[1].actor.as_str(),
            events[1].reason.as_deref()
        ),
        (
            Some("pending_sender"),
            "expired",
            "expiry",
            Some("no payment arrived in time")
        )
    );
    // Only unpaid, overdue transactions expire; a second run finds nothing.
    assert_eq!(
        transaction(&app, &s.token, &not_yet).await["status"],
        "pending_sender"
    );
    assert_eq!(stored(&app, &paid_late).await, untouched);
    assert_eq!(
        capstan::sep31::expiry::expire_overdue(&app.running.anchor).await,
        0
    );
    assert_eq!(store.transaction_events(&overdue).await.unwrap().len(), 2);
    // The sending anchor hears of it.
    let got = recorder.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json_body(), json!({ "transaction": t }));

    // The timeout is bounded.
    for bad in ["59", "2592001"] {
        let text = format!("[sep31]\npayment_timeout_secs = {bad}\n");
        let err = capstan::Config::from_parts(&text, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sep31.payment_timeout_secs"), "{err}");
    }
}

// ---- §10 ambiguities ------------------------------------------------------------------------

async fn amb_01_info_is_served_without_a_token(db: Option<String>) {
    let stranger = Keypair::random();
    let app = spawn(
        db,
        &format!(
            "[sep31]\nsending_anchors = [\"{}\"]\n",
            g(&Keypair::random())
        ),
    )
    .await;
    let (status, anonymous) = info(&app, None).await;
    assert_eq!(status, 200, "{anonymous}");
    // A sending anchor without an agreement may still read what is received.
    let token = app.token_for(&stranger, None).await;
    assert_eq!(info(&app, Some(&token)).await, (200, anonymous.clone()));
    // A token that is sent is checked: a bad one is refused rather than ignored.
    let (status, body) = info(&app, Some("not-a-token")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    // No fee is configured: SEP-31 leaves the fee keys out rather than publishing zeros.
    let usdc = &anonymous["receive"]["USDC"];
    assert!(usdc.get("fee_fixed").is_none(), "{usdc}");
    assert!(usdc.get("fee_percent").is_none(), "{usdc}");
}

async fn amb_03_structured_errors_are_told_apart_by_error(db: Option<String>) {
    let app = spawn(
        db,
        "[sep31.assets.USDC.fields.purpose]\ndescription = \"why the money is sent\"\n",
    )
    .await;
    let s = sending_anchor(&app).await;
    let (status, needed) = post(&app, &s.token, &s.body(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(needed["error"], "transaction_info_needed");
    // A sender registered with only some of its fields is not ACCEPTED.
    let three = app.token_for(&s.key, Some("3")).await;
    let partial = register(&app, &three, &SENDER[..2]).await;
    let (status, customer) = post(
        &app,
        &s.token,
        &s.body(json!({"sender_id": partial, "fields": {"transaction": {"purpose": "gift"}}})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(customer["error"], "customer_info_needed");
    let (status, plain) = post(&app, &s.token, &s.body(json!({"amount": "0"}))).await;
    assert_eq!(status, 400);
    assert_ne!(plain["error"], "customer_info_needed");
    assert_ne!(plain["error"], "transaction_info_needed");
}

async fn amb_06_info_publishes_the_compatibility_keys(db: Option<String>) {
    let app = spawn(db.clone(), "").await;
    let (_, info) = info(&app, None).await;
    let usdc = &info["receive"]["USDC"];
    assert_eq!(usdc["enabled"], json!(true));
    assert_eq!(usdc["funding_methods"], json!(["SEPA", "SWIFT"]));
    assert_eq!(usdc["quotes_supported"], json!(false));
    assert_eq!(usdc["quotes_required"], json!(false));
    assert_eq!(keys(&usdc["sep12"]), ["receiver", "sender"]);
    // No limits configured: none published.
    assert!(usdc.get("min_amount").is_none() && usdc.get("max_amount").is_none());
    assert_eq!(usdc["fields"], json!({"transaction": {}}));
    // Configured amounts are published as exact numbers.
    let priced = spawn(
        db,
        "[sep31.assets.USDC]\nfee_fixed = \"0.25\"\nfee_percent = \"1.5\"\nmin_amount = \"0.5\"\nmax_amount = \"100000\"\n",
    )
    .await;
    let (_, info) = self::info(&priced, None).await;
    let usdc = &info["receive"]["USDC"];
    assert_eq!(usdc["fee_fixed"], json!(0.25));
    assert_eq!(usdc["fee_percent"], json!(1.5));
    assert_eq!(usdc["min_amount"], json!(0.5));
    assert_eq!(usdc["max_amount"], json!(100000));
}

async fn amb_14_customers_of_any_memo_of_the_sending_anchor(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    // The validator's way: sender under G:1, receiver under G:2 ...
    let one = app.token_for(&key, Some("1")).await;
    let two = app.token_for(&key, Some("2")).await;
    let sender = register(&app, &one, SENDER).await;
    let receiver = register(&app, &two, RECEIVER).await;
    // ... or a plain G token naming the memo.
    let plain = app.token_for(&key, None).await;
    let sender_memo_5 = register(
        &app,
        &plain,
        &[SENDER, &[("memo", "5"), ("memo_type", "id")]].concat(),
    )
    .await;
    let three = app.token_for(&key, Some("3")).await;
    let (status, login) = app.login(&muxed(&key, 9), None, &[&key]).await;
    assert_eq!(status, 200);
    let m_token = login["token"].as_str().unwrap().to_owned();
    for token in [&one, &two, &plain, &three, &m_token] {
        for sender in [&sender, &sender_memo_5] {
            let body = json!({
                "amount": 10, "asset_code": "USDC", "funding_method": "SEPA",
                "sender_id": sender, "receiver_id": receiver,
            });
            create_with(&app, token, &body).await;
        }
    }
    // Another sending anchor cannot use them.
    let other = sending_anchor(&app).await;
    assert_error(
        &post(
            &app,
            &other.token,
            &other.body(json!({"sender_id": sender})),
        )
        .await,
        400,
        &format!("sender_id {sender} is not a customer registered by this sending anchor"),
    );
    assert_error(
        &post(
            &app,
            &other.token,
            &other.body(json!({"receiver_id": receiver})),
        )
        .await,
        400,
        &format!("receiver_id {receiver} is not a customer registered by this sending anchor"),
    );
}

async fn amb_28_amount_is_a_number_or_a_numeric_string(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let accepted: Vec<(Value, &str)> = vec![
        (json!(100), "100"),
        (json!("100"), "100"),
        (json!(100.5), "100.5"),
        (json!("100.50"), "100.5"),
        (json!(" 7 "), "7"),
        (json!("1.10000000"), "1.1"),
        (json!("0.0000001"), "0.0000001"),
        // Small JSON numbers too: serde writes them back as 1e-7 and the like.
        (json!(0.0000001), "0.0000001"),
        (json!(0.00001), "0.00001"),
        (json!(0.0000025), "0.0000025"),
        (json!(123456.1234567), "123456.1234567"),
        (json!("922337203685.4775807"), "922337203685.4775807"),
    ];
    for (amount, expected) in accepted {
        let id = create(&app, &s, json!({ "amount": amount })).await;
        let t = transaction(&app, &s.token, &id).await;
        assert_eq!(t["amount_in"], expected, "{amount}");
        assert_eq!(t["amount_out"], expected, "{amount}");
    }
    let refused: Vec<(Value, &str)> = vec![
        (json!(null), "amount is required"),
        (json!(""), "amount is required"),
        (json!("   "), "amount is required"),
        (json!("1e2"), "is not a plain decimal number"),
        (json!("0x10"), "is not a plain decimal number"),
        (json!("1,5"), "is not a plain decimal number"),
        (json!("NaN"), "is not a plain decimal number"),
        (json!("Infinity"), "is not a plain decimal number"),
        (json!("1.2.3"), "is not a decimal number"),
        (json!("--1"), "is not a decimal number"),
        (json!(0), "amount must be positive"),
        (json!("0"), "amount must be positive"),
        (json!(-5), "amount must be positive"),
        (json!("-0.5"), "amount must be positive"),
        (json!("0.00000001"), "more than the 7 decimal places"),
        (json!(0.00000001), "more than the 7 decimal places"),
        (json!(1.00000001), "more than the 7 decimal places"),
        (
            json!("922337203685.4775808"),
            "larger than any Stellar amount",
        ),
        (json!(1e30), "amount"),
        (
            json!(true),
            "amount must be a number or a numeric string, not a boolean",
        ),
        (json!([1]), "not an array"),
        (json!({"value": 1}), "not an object"),
    ];
    for (amount, needle) in refused {
        assert_error(
            &post(&app, &s.token, &s.body(json!({ "amount": amount }))).await,
            400,
            needle,
        );
    }
}

async fn amb_30_callback_url_errors(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let refused: Vec<(Value, &str)> = vec![
        (json!({}), "url is required"),
        (json!({"url": ""}), "url is required"),
        (json!({"url": 5}), "url is required"),
        (json!({"url": ["http://127.0.0.1/cb"]}), "url is required"),
        (
            json!({"callback": "http://127.0.0.1/cb"}),
            "url is required",
        ),
        (json!({"url": "not a url"}), "is not a URL"),
        (
            json!({"url": "ftp://127.0.0.1/cb"}),
            "url must be an http(s) URL",
        ),
        (
            json!({"url": "mailto:a@example.com"}),
            "url must be an http(s) URL",
        ),
        (json!([1, 2]), "url is required"),
    ];
    for (body, needle) in refused {
        assert_error(&put_callback(&app, &s.token, &id, &body).await, 400, needle);
    }
    assert_eq!(stored(&app, &id).await.callback_url, None);
    let good = json!({"url": "http://127.0.0.1:9/cb"});
    assert_error(
        &put_callback(&app, &s.token, "no-such-transaction", &good).await,
        404,
        "transaction not found: no-such-transaction",
    );
    let other = sending_anchor(&app).await;
    assert_error(
        &put_callback(&app, &other.token, &id, &good).await,
        404,
        &format!("transaction not found: {id}"),
    );
    assert_eq!(stored(&app, &id).await.callback_url, None);
    assert_eq!(
        put_callback(&app, &s.token, &id, &good).await,
        (204, Value::Null)
    );
    assert_eq!(
        stored(&app, &id).await.callback_url.as_deref(),
        Some("http://127.0.0.1:9/cb")
    );
}

// ---- errors -----------------------------------------------------------------------------------

async fn error_400_malformed_bodies(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    // Raw bodies that are not a JSON object.
    for raw in ["", "{", "[]", "\"amount\"", "5", "null", "{\"amount\": 1,}"] {
        let response = app
            .http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&s.token)
            .header(CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let (status, body) = answer(response).await;
        assert_eq!(status, 400, "{raw:?}: {body}");
    }
    // Wrong types and NUL bytes (which PostgreSQL refuses in TEXT) in every string member.
    let refused: Vec<(Value, &str)> = vec![
        (
            json!({"asset_code": 5}),
            "asset_code must be a string, not a number",
        ),
        (
            json!({"asset_issuer": true}),
            "asset_issuer must be a string",
        ),
        (
            json!({"funding_method": ["SEPA"]}),
            "funding_method must be a string",
        ),
        (
            json!({"sender_id": {"id": 1}}),
            "sender_id must be a string",
        ),
        (json!({"receiver_id": 7}), "receiver_id must be a string"),
        (json!({"quote_id": 1}), "quote_id must be a string"),
        (
            json!({"destination_asset": 1}),
            "destination_asset must be a string",
        ),
        (
            json!({"refund_memo": "1", "refund_memo_type": 1}),
            "refund_memo_type must be a string",
        ),
        (json!({"asset_code": "US\u{0}DC"}), "asset_code"),
        (json!({"funding_method": "SEPA\u{0}"}), "funding_method"),
        (json!({"asset_issuer": "\u{0}"}), "asset_issuer"),
        (json!({"sender_id": "\u{0}"}), "sender_id"),
        (json!({"receiver_id": "a\u{0}b"}), "receiver_id"),
        (json!({"amount": "1\u{0}"}), "amount"),
        (
            json!({"refund_memo": "a\u{0}b", "refund_memo_type": "text"}),
            "refund_memo",
        ),
        (
            json!({"refund_memo": "1\u{0}", "refund_memo_type": "id"}),
            "refund_memo",
        ),
    ];
    for (extra, needle) in refused {
        let body = s.body(extra.clone());
        let got = post(&app, &s.token, &body).await;
        assert_error(&got, 400, needle);
    }
    // Nothing was stored.
    assert_eq!(count_transactions(&app.running.anchor.store).await, 0);
    // A JSON number amount is read as written, not through an f64 (which would make
    // 1.000000000000000000001 an acceptable 1).
    for (literal, expected) in [
        (
            "1.000000000000000000001",
            Err("more than the 7 decimal places"),
        ),
        (
            "99.9999999999999999999",
            Err("more than the 7 decimal places"),
        ),
        ("12.5000000", Ok("12.5")),
    ] {
        let raw = s
            .body(json!({"amount": "AMOUNT"}))
            .to_string()
            .replace("\"AMOUNT\"", literal);
        let response = app
            .http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&s.token)
            .header(CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let (status, body) = answer(response).await;
        match expected {
            Err(message) => {
                assert_eq!(status, 400, "{literal}: {body}");
                let error = body["error"].as_str().unwrap();
                assert!(error.contains(message) && error.contains(literal), "{body}");
            }
            Ok(amount_in) => {
                assert_eq!(status, 201, "{literal}: {body}");
                let id = body["id"].as_str().unwrap();
                assert_eq!(stored(&app, id).await.amount_in, amount_in);
            }
        }
    }
    // A PATCH and a callback with NUL bytes.
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    ask_for_fields(
        &app,
        &id,
        json!({"transaction": {"receiver_account_number": {"description": "IBAN"}}}),
    )
    .await;
    // Field values are kept as JSON strings, so a NUL is either refused or kept exactly.
    let value = "DE\u{0}89";
    let (status, body) = patch(
        &app,
        &s.token,
        &id,
        &json!({"fields": {"transaction": {"receiver_account_number": value}}}),
    )
    .await;
    match status {
        200 => {
            let fields: Value = serde_json::from_str(&stored(&app, &id).await.fields).unwrap();
            assert_eq!(fields["receiver_account_number"], value);
        }
        400 => assert_eq!(
            stored(&app, &id).await.status,
            "pending_transaction_info_update"
        ),
        other => panic!("PATCH with a NUL: {other} {body}"),
    }
    // A URL is percent-encoded by the URL parser: refused, or kept as the URL it is.
    let url = "http://127.0.0.1:9/c\u{0}b";
    let (status, body) = put_callback(&app, &s.token, &id, &json!({ "url": url })).await;
    match status {
        204 => assert_eq!(
            stored(&app, &id).await.callback_url.as_deref(),
            Some(url::Url::parse(url).unwrap().as_str())
        ),
        400 => assert_eq!(stored(&app, &id).await.callback_url, None),
        other => panic!("callback URL with a NUL: {other} {body}"),
    }
}

async fn error_400_odd_transaction_ids_in_the_path(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    let good = json!({"url": "http://127.0.0.1:9/cb"});
    let fields = json!({"fields": {"transaction": {}}});
    // A NUL or invalid UTF-8 is a JSON 400; anything else that names no transaction is 404.
    for (segment, want) in [
        ("%00", 400),
        ("abc%00def", 400),
        ("%FF", 400),
        ("%C3%28", 400),
        ("%20", 404),
        ("..%2F..%2Finfo", 404),
        ("%27%20OR%201%3D1%20--", 404),
        (&"a".repeat(2000), 404),
    ] {
        for (method, path, body) in [
            (Method::GET, format!("/sep31/transactions/{segment}"), None),
            (
                Method::PATCH,
                format!("/sep31/transactions/{segment}"),
                Some(&fields),
            ),
            (
                Method::PUT,
                format!("/sep31/transactions/{segment}/callback"),
                Some(&good),
            ),
        ] {
            let (status, body) = call(&app, method.clone(), &path, Some(&s.token), body).await;
            assert_eq!(status, want, "{method} {path}: {body}");
        }
    }
    // The real one is still fine.
    assert_eq!(get_tx(&app, &s.token, &id).await.0, 200);
}

async fn error_403_unknown_sending_anchor_on_every_endpoint(db: Option<String>) {
    let partner = Keypair::random();
    let app = spawn(
        db,
        &format!("[sep31]\nsending_anchors = [\"{}\"]\n", g(&partner)),
    )
    .await;
    let token = app.token_for(&partner, None).await;
    let one = app.token_for(&partner, Some("1")).await;
    let two = app.token_for(&partner, Some("2")).await;
    let s = Sender {
        sender: register(&app, &one, SENDER).await,
        receiver: register(&app, &two, RECEIVER).await,
        key: partner,
        token,
    };
    let id = create(&app, &s, json!({})).await;
    paid(&app, &id).await;
    ask_for_fields(
        &app,
        &id,
        json!({"transaction": {"receiver_account_number": {"description": "IBAN"}}}),
    )
    .await;
    let before = stored(&app, &id).await;
    let stranger = Keypair::random();
    let (status, login) = app.login(&muxed(&stranger, 3), None, &[&stranger]).await;
    assert_eq!(status, 200);
    let tokens = [
        app.token_for(&stranger, None).await,
        login["token"].as_str().unwrap().to_owned(),
    ];
    let body = s.body(json!({}));
    let callback = json!({"url": "http://127.0.0.1:9/cb"});
    let fields = json!({"fields": {"transaction": {"receiver_account_number": "DE89"}}});
    for token in &tokens {
        for (method, path, body) in [
            (Method::POST, "/sep31/transactions".to_owned(), Some(&body)),
            (Method::GET, format!("/sep31/transactions/{id}"), None),
            (Method::GET, "/sep31/transactions/unknown".into(), None),
            (
                Method::PATCH,
                format!("/sep31/transactions/{id}"),
                Some(&fields),
            ),
            (
                Method::PUT,
                format!("/sep31/transactions/{id}/callback"),
                Some(&callback),
            ),
        ] {
            assert_error(
                &call(&app, method, &path, Some(token), body).await,
                403,
                &format!("account {} is not a sending anchor", g(&stranger)),
            );
        }
    }
    assert_eq!(stored(&app, &id).await, before, "nothing changed");
}

async fn error_404_every_transaction_endpoint(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let other = sending_anchor(&app).await;
    let id = create(&app, &other, json!({})).await;
    let callback = json!({"url": "http://127.0.0.1:9/cb"});
    let fields = json!({"fields": {"transaction": {"x": "y"}}});
    for tx in [id.as_str(), "9b2f4c59-6f0e-4f0a-9b1e-2f3c4d5e6f70"] {
        for (method, path, body) in [
            (Method::GET, format!("/sep31/transactions/{tx}"), None),
            (
                Method::PATCH,
                format!("/sep31/transactions/{tx}"),
                Some(&fields),
            ),
            (
                Method::PUT,
                format!("/sep31/transactions/{tx}/callback"),
                Some(&callback),
            ),
        ] {
            assert_error(
                &call(&app, method, &path, Some(&s.token), body).await,
                404,
                &format!("transaction not found: {tx}"),
            );
        }
    }
    // Paths that are no endpoint at all.
    for path in [
        "/sep31/transaction",
        "/sep31/transactions/a/b",
        "/sep31/info/x",
    ] {
        assert_eq!(
            call(&app, Method::GET, path, Some(&s.token), None).await.0,
            404,
            "{path}"
        );
    }
}

async fn error_405_413_415_transport_errors_are_json(db: Option<String>) {
    let app = spawn(db, "").await;
    let s = sending_anchor(&app).await;
    let id = create(&app, &s, json!({})).await;
    for (method, path) in [
        (Method::DELETE, format!("/sep31/transactions/{id}")),
        (Method::POST, format!("/sep31/transactions/{id}")),
        (Method::GET, "/sep31/transactions".into()),
        (Method::POST, "/sep31/info".into()),
        (Method::GET, format!("/sep31/transactions/{id}/callback")),
    ] {
        let (status, body) = call(&app, method.clone(), &path, Some(&s.token), None).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
    }
    // A body over the limit.
    let max = app.running.anchor.config.max_body_bytes;
    let mut huge = s.body(json!({}));
    huge["padding"] = json!("x".repeat(max + 1));
    let (status, body) = post(&app, &s.token, &huge).await;
    assert_eq!(status, 413, "{body}");
    // Neither JSON nor a form.
    for content_type in ["text/xml", "multipart/form-data; boundary=x", "image/png"] {
        let response = app
            .http
            .post(format!("{}/sep31/transactions", app.url))
            .bearer_auth(&s.token)
            .header(CONTENT_TYPE, content_type)
            .body(s.body(json!({})).to_string())
            .send()
            .await
            .unwrap();
        let (status, body) = answer(response).await;
        assert_eq!(status, 415, "{content_type}: {body}");
    }
}

/// SEP-31 3.0's asynchronous KYC, end to end: a transaction created without customers waits
/// in `pending_receiver`; the sending anchor registers the sender and receiver through
/// SEP-12 `transaction_id` + `type`; once both are ACCEPTED the transaction becomes
/// `pending_sender` with the account and memo to pay, and the callback says so.
async fn sep31_async_kyc_through_transaction_id(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let body = json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"});
    let id = assert_waits_for_kyc(&post(&app, &token, &body).await);
    let waiting = transaction(&app, &token, &id).await;
    assert_eq!(waiting["status"], "pending_receiver");
    assert!(waiting.get("stellar_memo").is_none(), "{waiting}");
    let recorder = Recorder::default();
    let url = recorder.start("/sep31/callback?anchor=async").await;
    assert_eq!(
        put_callback(&app, &token, &id, &json!({"url": url}))
            .await
            .0,
        204
    );

    // Nobody is registered yet: the fields of each type, no id.
    for kind in ["sep31-sender", "sep31-receiver"] {
        let (status, customer) =
            kyc_get(&app, &token, &[("transaction_id", &id), ("type", kind)]).await;
        assert_eq!(status, 200, "{customer}");
        assert_eq!(customer["status"], "NEEDS_INFO");
        assert!(customer.get("id").is_none(), "{customer}");
        assert!(customer["fields"]["first_name"].is_object(), "{customer}");
    }

    // The sender, through the transaction: linked, but the receiver is still missing.
    let mut sender_pairs = vec![("transaction_id", id.as_str())];
    sender_pairs.extend_from_slice(SENDER);
    let sender = register(&app, &token, &sender_pairs).await;
    let row = stored(&app, &id).await;
    assert_eq!(row.sender_id.as_deref(), Some(sender.as_str()));
    assert_eq!(row.status, "pending_receiver");
    // The same PUT again updates that customer rather than creating another.
    assert_eq!(register(&app, &token, &sender_pairs).await, sender);
    let (_, by_transaction) = kyc_get(
        &app,
        &token,
        &[("transaction_id", &id), ("type", "sep31-sender")],
    )
    .await;
    assert_eq!(by_transaction["id"], json!(sender));
    assert_eq!(by_transaction["status"], "ACCEPTED");
    recorder.stays_at(0, Duration::from_millis(300)).await;

    // A token of one user of the account reaches the transaction's customers too (AMB-14).
    let user = app.token_for(&key, Some("9")).await;
    let mut receiver_pairs = vec![("transaction_id", id.as_str())];
    receiver_pairs.extend_from_slice(RECEIVER);
    let receiver = register(&app, &user, &receiver_pairs).await;
    assert_ne!(receiver, sender);

    // Both ACCEPTED: payable, with a memo of its own, and the callback tells the sender.
    let ready = transaction(&app, &token, &id).await;
    assert_eq!(ready["status"], "pending_sender", "{ready}");
    assert_eq!(ready["stellar_memo_type"], "id");
    let memo: u64 = ready["stellar_memo"].as_str().unwrap().parse().unwrap();
    assert!(memo > 0 && memo < 1 << 63);
    let (_, distribution) = asset_of(&app, "USDC");
    assert_eq!(ready["stellar_account_id"], json!(distribution));
    let row = stored(&app, &id).await;
    assert_eq!(row.receiver_id.as_deref(), Some(receiver.as_str()));
    assert!(row.expires_at.is_some());
    let got = recorder.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json_body()["transaction"], ready);
    let events = app
        .running
        .anchor
        .store
        .transaction_events(&id)
        .await
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (
            last.from_status.as_deref(),
            last.to_status.as_str(),
            last.actor.as_str()
        ),
        (Some("pending_receiver"), "pending_sender", "kyc")
    );

    // Another sending anchor cannot reach the transaction's customers.
    let stranger = app.token_for(&Keypair::random(), None).await;
    let (status, answer) = kyc_get(
        &app,
        &stranger,
        &[("transaction_id", &id), ("type", "sep31-sender")],
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    // Customers registered through transactions do not make the account a shared one: it
    // may still register a customer of its own without a memo.
    register(&app, &token, SENDER).await;
}

/// The periodic recheck reaches every transaction waiting on its customers, however many
/// paid transactions share its status and however many others wait.
async fn sep31_recheck_finds_every_waiting_transaction(db: Option<String>) {
    let app = spawn(db, "").await;
    let store = &app.running.anchor.store;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let body = json!({"amount": "100", "asset_code": "USDC", "funding_method": "SEPA"});
    let waiting = assert_waits_for_kyc(&post(&app, &token, &body).await);
    let template = stored(&app, &waiting).await;
    // Newer transactions in the same status that are paid (being paid out), and more
    // waiting ones than one page holds.
    for n in 0..150 {
        let mut row = template.clone();
        row.id = format!("{}-{n}", template.id);
        row.started_at = template.started_at + 1 + n;
        if n % 2 == 0 {
            row.paid = true;
            row.stellar_memo = Some(format!("{}", 1_000_000 + n));
        }
        assert!(store.insert_transaction(&row, "test").await.unwrap());
    }
    // Both customers become known and ACCEPTED without a request that would look.
    let one = app.token_for(&key, Some("1")).await;
    let two = app.token_for(&key, Some("2")).await;
    let sender = register(&app, &one, SENDER).await;
    let receiver = register(&app, &two, RECEIVER).await;
    let mut last_waiting = template.clone();
    last_waiting.id = format!("{}-149", template.id);
    for id in [&waiting, &last_waiting.id] {
        let row = stored(&app, id).await;
        assert!(
            store
                .link_transaction_customer(&row, true, &sender)
                .await
                .unwrap()
        );
        let row = stored(&app, id).await;
        assert!(
            store
                .link_transaction_customer(&row, false, &receiver)
                .await
                .unwrap()
        );
    }
    capstan::sep31::kyc::recheck_waiting(&app.running.anchor).await;
    for id in [&waiting, &last_waiting.id] {
        let row = stored(&app, id).await;
        assert_eq!(row.status, "pending_sender", "{id}");
        assert!(row.stellar_memo.is_some());
    }
    // The paid ones are untouched.
    let paid = stored(&app, &format!("{}-0", template.id)).await;
    assert_eq!(paid.status, "pending_receiver");
}
