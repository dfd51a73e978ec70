//! SEP-12 KYC API, black-box: the real anchor on a real port, over HTTP, on SQLite and on
//! PostgreSQL (checklist §4 SEP12-01..37 and §7 SEP9-01..03).
//!
//! The signed status callbacks and their outbox (SEP12-34..36) have their own test file.

mod common;

use common::on_both_backends;
use common::{ADMIN_KEY, AppOptions, TestApp, admin_toml};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use stellar::{ClientAccount, Keypair};

// ---- configuration ---------------------------------------------------------------------

/// Three types, so that per-type statuses, binary fields, dates, numbers, choices and a type
/// whose every field is required can all be exercised.
const TYPES: &str = r#"
[kyc.types.sep31-sender]
fields = ["first_name", "last_name", "email_address"]
optional = ["mobile_number", "birth_date"]

[kyc.types.sep31-receiver]
fields = ["first_name", "last_name", "email_address", "bank_account_number", "bank_number"]
optional = ["photo_id_front", "photo_id_back", "birth_date", "id_issue_date", "id_expiration_date", "address_country_code", "occupation", "sex", "mobile_number"]

[kyc.types.phone-verified]
fields = ["first_name", "mobile_number"]
"#;

const SENDER_FIELDS: &[&str] = &[
    "birth_date",
    "email_address",
    "first_name",
    "last_name",
    "mobile_number",
];
const RECEIVER_FIELDS: &[&str] = &[
    "address_country_code",
    "bank_account_number",
    "bank_number",
    "birth_date",
    "email_address",
    "first_name",
    "id_expiration_date",
    "id_issue_date",
    "last_name",
    "mobile_number",
    "occupation",
    "photo_id_back",
    "photo_id_front",
    "sex",
];

const SENDER: &[(&str, &str)] = &[
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

/// An anchor with the types above, the admin API, and `kyc` lines added to `[kyc]`.
async fn spawn(db: Option<String>, kyc: &str) -> TestApp {
    TestApp::spawn_with(AppOptions {
        toml: format!("[kyc]\n{kyc}\n{TYPES}\n{}", admin_toml()),
        database_url: db,
        ..Default::default()
    })
    .await
}

const VERIFY: &str = r#"verify_fields = ["mobile_number"]"#;

// ---- HTTP helpers -----------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Enc {
    Json,
    Form,
    Multipart,
}

const ENCODINGS: [Enc; 3] = [Enc::Json, Enc::Form, Enc::Multipart];

/// Every SEP-12 answer is JSON (SEP12-03) and none is a server error.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = common::json_of(response).await;
    assert!(status < 500, "server error {status}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?} for {status} {body}"
    );
    (status, body)
}

fn multipart(pairs: &[(&str, &str)]) -> Form {
    pairs.iter().fold(Form::new(), |form, (k, v)| {
        form.text(k.to_string(), v.to_string())
    })
}

/// A request to `<KYC_SERVER><path>` with `pairs` as a body in the given encoding.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    enc: Enc,
    pairs: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.kyc_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match enc {
        Enc::Json => {
            let object: serde_json::Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            request.json(&object)
        }
        Enc::Form => request.form(pairs),
        Enc::Multipart => request.multipart(multipart(pairs)),
    };
    answer(request.send().await.expect("request")).await
}

async fn get(app: &TestApp, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
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

async fn put(app: &TestApp, token: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    send(app, Method::PUT, "/customer", Some(token), Enc::Json, pairs).await
}

async fn put_multipart(app: &TestApp, token: &str, form: Form) -> (u16, Value) {
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    answer(response).await
}

async fn post_file(app: &TestApp, token: &str, bytes: Vec<u8>, mime: &str) -> (u16, Value) {
    let part = Part::bytes(bytes)
        .file_name("document.bin")
        .mime_str(mime)
        .unwrap();
    let response = app
        .http
        .post(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("request");
    answer(response).await
}

async fn get_files(app: &TestApp, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("request");
    answer(response).await
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

/// The operator's view of a customer (values, field statuses, verification codes, files).
async fn admin_customer(app: &TestApp, id: &str) -> Value {
    let (status, body) = admin(app, Method::GET, &format!("/admin/customers/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

// ---- identities -------------------------------------------------------------------------

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

async fn muxed_token(app: &TestApp, key: &Keypair, id: u64) -> String {
    let (status, body) = app.login(&muxed(key, id), None, &[key]).await;
    assert_eq!(status, 200, "muxed login: {body}");
    body["token"].as_str().unwrap().to_owned()
}

// ---- assertions -------------------------------------------------------------------------

/// `status` with `{"error": "..."}` whose message contains `needle`.
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

/// A PUT answered 202 `{"id"}`; returns the id.
#[track_caller]
fn accepted_id(got: &(u16, Value)) -> String {
    let (status, body) = got;
    assert_eq!(*status, 202, "PUT /customer: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "PUT body has keys besides id: {body}"
    );
    let id = body["id"].as_str().expect("string id");
    assert!(!id.is_empty());
    id.to_owned()
}

fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Registers a sender with every required field (and `extra`); returns its id.
async fn register(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(extra).copied().collect();
    accepted_id(&put(app, token, &pairs).await)
}

/// A GET of a customer with an id: 200, that id, the given status.
#[track_caller]
fn assert_customer(got: &(u16, Value), id: &str, status: &str) {
    let (code, body) = got;
    assert_eq!(*code, 200, "{body}");
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["status"], status, "{body}");
}

/// A GET that found no customer: 200 NEEDS_INFO without an id.
#[track_caller]
fn assert_no_customer(got: &(u16, Value)) {
    let (code, body) = got;
    assert_eq!(*code, 200, "{body}");
    assert_eq!(body["status"], "NEEDS_INFO", "{body}");
    assert!(body.get("id").is_none(), "unexpected id: {body}");
    assert!(body.get("provided_fields").is_none(), "{body}");
}

async fn verification_code(app: &TestApp, id: &str, field: &str) -> String {
    let detail = admin_customer(app, id).await;
    let code = detail["fields"][field]["verification_code"]
        .as_str()
        .unwrap_or_else(|| panic!("no verification code for {field}: {detail}"))
        .to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code:?}"
    );
    code
}

fn wrong_code(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    bytes
}

fn file_part(bytes: Vec<u8>, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name("photo.png")
        .mime_str(mime)
        .unwrap()
}

// ---- the two backends ---------------------------------------------------------------------

on_both_backends! {
    sep12_01_kyc_server_is_published => sep12_01_kyc_server_is_published_sqlite, sep12_01_kyc_server_is_published_postgres;
    sep12_02_every_endpoint_requires_a_token => sep12_02_every_endpoint_requires_a_token_sqlite, sep12_02_every_endpoint_requires_a_token_postgres;
    sep12_03_every_endpoint_takes_json_form_and_multipart => sep12_03_every_endpoint_takes_json_form_and_multipart_sqlite, sep12_03_every_endpoint_takes_json_form_and_multipart_postgres;
    sep12_04_binary_fields_arrive_as_multipart_files => sep12_04_binary_fields_arrive_as_multipart_files_sqlite, sep12_04_binary_fields_arrive_as_multipart_files_postgres;
    sep12_05_binary_parts_may_come_after_or_before_text => sep12_05_binary_parts_may_come_after_or_before_text_sqlite, sep12_05_binary_parts_may_come_after_or_before_text_postgres;
    sep12_06_customers_are_keyed_on_the_token_subject => sep12_06_customers_are_keyed_on_the_token_subject_sqlite, sep12_06_customers_are_keyed_on_the_token_subject_postgres;
    sep12_07_request_memo_must_match_the_token_memo => sep12_07_request_memo_must_match_the_token_memo_sqlite, sep12_07_request_memo_must_match_the_token_memo_postgres;
    sep12_08_plain_account_token_may_use_any_memo => sep12_08_plain_account_token_may_use_any_memo_sqlite, sep12_08_plain_account_token_may_use_any_memo_postgres;
    sep12_09_an_account_is_shared_or_not => sep12_09_an_account_is_shared_or_not_sqlite, sep12_09_an_account_is_shared_or_not_postgres;
    sep12_10_account_param_must_match_the_token => sep12_10_account_param_must_match_the_token_sqlite, sep12_10_account_param_must_match_the_token_postgres;
    sep12_11_memo_types_id_text_hash => sep12_11_memo_types_id_text_hash_sqlite, sep12_11_memo_types_id_text_hash_postgres;
    sep12_12_unknown_customer_is_needs_info_with_fields => sep12_12_unknown_customer_is_needs_info_with_fields_sqlite, sep12_12_unknown_customer_is_needs_info_with_fields_postgres;
    sep12_13_status_is_always_present => sep12_13_status_is_always_present_sqlite, sep12_13_status_is_always_present_postgres;
    sep12_13a_needs_info_has_fields => sep12_13a_needs_info_has_fields_sqlite, sep12_13a_needs_info_has_fields_postgres;
    sep12_13b_rejected_carries_a_message => sep12_13b_rejected_carries_a_message_sqlite, sep12_13b_rejected_carries_a_message_postgres;
    sep12_14_accepted_has_no_required_fields_left => sep12_14_accepted_has_no_required_fields_left_sqlite, sep12_14_accepted_has_no_required_fields_left_postgres;
    sep12_15_provided_fields_carry_their_status => sep12_15_provided_fields_carry_their_status_sqlite, sep12_15_provided_fields_carry_their_status_postgres;
    sep12_16_all_required_accepted_is_accepted => sep12_16_all_required_accepted_is_accepted_sqlite, sep12_16_all_required_accepted_is_accepted_postgres;
    sep12_17_fields_are_sep9_names_with_type_and_description => sep12_17_fields_are_sep9_names_with_type_and_description_sqlite, sep12_17_fields_are_sep9_names_with_type_and_description_postgres;
    sep12_18_status_differs_per_type => sep12_18_status_differs_per_type_sqlite, sep12_18_status_differs_per_type_postgres;
    sep12_19_transaction_id_requires_type => sep12_19_transaction_id_requires_type_sqlite, sep12_19_transaction_id_requires_type_postgres;
    sep12_20_requested_update_is_needs_info_with_provided_fields => sep12_20_requested_update_is_needs_info_with_provided_fields_sqlite, sep12_20_requested_update_is_needs_info_with_provided_fields_postgres;
    sep12_21_foreign_or_unknown_id_is_404 => sep12_21_foreign_or_unknown_id_is_404_sqlite, sep12_21_foreign_or_unknown_id_is_404_postgres;
    sep12_22_other_invalid_requests_are_400 => sep12_22_other_invalid_requests_are_400_sqlite, sep12_22_other_invalid_requests_are_400_postgres;
    sep12_23_put_takes_json_form_and_multipart => sep12_23_put_takes_json_form_and_multipart_sqlite, sep12_23_put_takes_json_form_and_multipart_postgres;
    sep12_24_put_stores_and_answers_202_with_a_stable_id => sep12_24_put_stores_and_answers_202_with_a_stable_id_sqlite, sep12_24_put_stores_and_answers_202_with_a_stable_id_postgres;
    sep12_25_put_with_unknown_or_foreign_id_is_404 => sep12_25_put_with_unknown_or_foreign_id_is_404_sqlite, sep12_25_put_with_unknown_or_foreign_id_is_404_postgres;
    sep12_26_every_error_body_carries_error => sep12_26_every_error_body_carries_error_sqlite, sep12_26_every_error_body_carries_error_postgres;
    sep12_27_verification_codes_go_through_put => sep12_27_verification_codes_go_through_put_sqlite, sep12_27_verification_codes_go_through_put_postgres;
    sep12_28_memos_differentiate_customers => sep12_28_memos_differentiate_customers_sqlite, sep12_28_memos_differentiate_customers_postgres;
    sep12_29_deprecated_verification_endpoint => sep12_29_deprecated_verification_endpoint_sqlite, sep12_29_deprecated_verification_endpoint_postgres;
    sep12_30_only_the_owner_deletes => sep12_30_only_the_owner_deletes_sqlite, sep12_30_only_the_owner_deletes_postgres;
    sep12_31_delete_erases_everything => sep12_31_delete_erases_everything_sqlite, sep12_31_delete_erases_everything_postgres;
    sep12_32_shared_account_delete_takes_memo_in_any_body => sep12_32_shared_account_delete_takes_memo_in_any_body_sqlite, sep12_32_shared_account_delete_takes_memo_in_any_body_postgres;
    sep12_33_callback_url_is_replaced => sep12_33_callback_url_is_replaced_sqlite, sep12_33_callback_url_is_replaced_postgres;
    sep12_37_uploaded_file_ids_fill_binary_fields => sep12_37_uploaded_file_ids_fill_binary_fields_sqlite, sep12_37_uploaded_file_ids_fill_binary_fields_postgres;
    sep9_01_only_sep9_names_are_taken => sep9_01_only_sep9_names_are_taken_sqlite, sep9_01_only_sep9_names_are_taken_postgres;
    sep9_02_formats_are_validated => sep9_02_formats_are_validated_sqlite, sep9_02_formats_are_validated_postgres;
    sep9_03_field_types_map_onto_sep12_types => sep9_03_field_types_map_onto_sep12_types_sqlite, sep9_03_field_types_map_onto_sep12_types_postgres;
    error_400_unknown_type => error_400_unknown_type_sqlite, error_400_unknown_type_postgres;
    error_400_unknown_field_name => error_400_unknown_field_name_sqlite, error_400_unknown_field_name_postgres;
    error_400_malformed_memo => error_400_malformed_memo_sqlite, error_400_malformed_memo_postgres;
    error_400_bad_memo_type => error_400_bad_memo_type_sqlite, error_400_bad_memo_type_postgres;
    error_403_account_mismatch => error_403_account_mismatch_sqlite, error_403_account_mismatch_postgres;
    error_403_memo_mismatch => error_403_memo_mismatch_sqlite, error_403_memo_mismatch_postgres;
    error_404_id_of_another_account => error_404_id_of_another_account_sqlite, error_404_id_of_another_account_postgres;
    error_413_oversized_upload_names_the_field => error_413_oversized_upload_names_the_field_sqlite, error_413_oversized_upload_names_the_field_postgres;
    error_415_wrong_content_type => error_415_wrong_content_type_sqlite, error_415_wrong_content_type_postgres;
    error_400_nested_json => error_400_nested_json_sqlite, error_400_nested_json_postgres;
    error_403_missing_token => error_403_missing_token_sqlite, error_403_missing_token_postgres;
    error_400_binary_field_sent_as_text => error_400_binary_field_sent_as_text_sqlite, error_400_binary_field_sent_as_text_postgres;
    error_400_wrong_verification_code => error_400_wrong_verification_code_sqlite, error_400_wrong_verification_code_postgres;
}

// ---- §4.1 general rules -------------------------------------------------------------------

async fn sep12_01_kyc_server_is_published(db: Option<String>) {
    let app = spawn(db, "").await;
    let text = app
        .get("/.well-known/stellar.toml")
        .await
        .text()
        .await
        .unwrap();
    let toml: toml::Table = text.parse().expect("stellar.toml is TOML");
    let kyc_server = toml["KYC_SERVER"]
        .as_str()
        .expect("KYC_SERVER is published");
    assert_eq!(kyc_server, format!("{}/kyc", app.url));
    assert!(!kyc_server.ends_with('/'));

    // A client that only knows the published URL reaches the endpoints under it.
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let response = app
        .http
        .get(format!("{kyc_server}/customer"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "NEEDS_INFO");
}

async fn sep12_02_every_endpoint_requires_a_token(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let account = g(&key);
    let valid = app.token_for(&key, None).await;
    // A signature byte changed: the token no longer verifies.
    let (head, signature) = valid.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &signature[1..]);

    let endpoints: Vec<(Method, String)> = vec![
        (Method::GET, "/customer".into()),
        (Method::PUT, "/customer".into()),
        (Method::DELETE, format!("/customer/{account}")),
        (Method::PUT, "/customer/callback".into()),
        (Method::PUT, "/customer/verification".into()),
        (Method::POST, "/customer/files".into()),
        (Method::GET, "/customer/files".into()),
    ];
    let body = [
        ("first_name", "Ana"),
        ("url", "http://127.0.0.1:9/cb"),
        ("id", "x"),
        ("file_id", "x"),
    ];
    for (method, path) in &endpoints {
        let missing = send(&app, method.clone(), path, None, Enc::Multipart, &body).await;
        assert_error(&missing, 403, "Authorization");

        let mut request = app
            .http
            .request(method.clone(), format!("{}{path}", app.kyc_url()))
            .bearer_auth(&forged)
            .multipart(multipart(&body));
        let bad = answer(request.send().await.unwrap()).await;
        assert_eq!(bad.0, 403, "{method} {path} with a forged token: {}", bad.1);
        assert!(bad.1["error"].is_string(), "{}", bad.1);

        request = app
            .http
            .request(method.clone(), format!("{}{path}", app.kyc_url()))
            .header("Authorization", format!("Basic {valid}"))
            .multipart(multipart(&body));
        let wrong_scheme = answer(request.send().await.unwrap()).await;
        assert_error(&wrong_scheme, 403, "Bearer");
    }
    // The refused PUT stored nothing.
    assert_no_customer(&get(&app, &valid, &[]).await);
}

async fn sep12_03_every_endpoint_takes_json_form_and_multipart(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    for enc in ENCODINGS {
        let key = Keypair::random();
        let token = app.token_for(&key, None).await;
        let fields = [
            ("first_name", "Ana María"),
            ("last_name", "O'Brien & Söhne"),
            ("email_address", "ana+kyc@example.com"),
            ("mobile_number", "+14155552671"),
        ];
        let id =
            accepted_id(&send(&app, Method::PUT, "/customer", Some(&token), enc, &fields).await);
        // The values arrive intact whatever the encoding.
        let detail = admin_customer(&app, &id).await;
        for (name, value) in fields {
            assert_eq!(detail["fields"][name]["value"], value, "{enc:?} {name}");
        }

        let code = verification_code(&app, &id, "mobile_number").await;
        let (status, body) = send(
            &app,
            Method::PUT,
            "/customer/verification",
            Some(&token),
            enc,
            &[("id", &id), ("mobile_number_verification", &code)],
        )
        .await;
        assert_eq!(status, 200, "{enc:?}: {body}");
        assert_eq!(body["status"], "ACCEPTED", "{enc:?}: {body}");

        let callback = send(
            &app,
            Method::PUT,
            "/customer/callback",
            Some(&token),
            enc,
            &[("url", "http://127.0.0.1:9/kyc-callback")],
        )
        .await;
        assert_eq!(callback, (200, json!({})), "{enc:?}");

        let deleted = send(
            &app,
            Method::DELETE,
            &format!("/customer/{}", g(&key)),
            Some(&token),
            enc,
            &[],
        )
        .await;
        assert_eq!(deleted, (200, json!({})), "{enc:?}");
        assert_no_customer(&get(&app, &token, &[]).await);
    }
}

async fn sep12_04_binary_fields_arrive_as_multipart_files(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let photo = png(3000);
    let form = multipart(RECEIVER).part("photo_id_front", file_part(photo.clone(), "image/png"));
    let id = accepted_id(&put_multipart(&app, &token, form).await);

    let (status, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(status, 200, "{body}");
    let front = &body["provided_fields"]["photo_id_front"];
    assert_eq!(front["type"], "binary", "{body}");
    assert_eq!(front["status"], "ACCEPTED", "{body}");
    assert!(
        body["fields"].get("photo_id_front").is_none(),
        "a provided file is no longer asked for: {body}"
    );

    let (status, files) = get_files(&app, &token, &[("customer_id", &id)]).await;
    assert_eq!(status, 200);
    let list = files["files"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{files}");
    assert_eq!(list[0]["content_type"], "image/png");
    assert_eq!(list[0]["size"], photo.len());
    assert_eq!(list[0]["customer_id"], id.as_str());

    // The bytes kept are the bytes sent.
    let file_id = list[0]["file_id"].as_str().unwrap();
    let detail = admin_customer(&app, &id).await;
    assert_eq!(detail["fields"]["photo_id_front"]["file_id"], file_id);
    let response = app
        .http
        .get(format!("{}/admin/files/{file_id}", app.admin_url()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(response.bytes().await.unwrap().to_vec(), photo);
}

async fn sep12_05_binary_parts_may_come_after_or_before_text(db: Option<String>) {
    let app = spawn(db, "").await;
    // The recommended order: every text field, then the files.
    let after = Keypair::random();
    let token_after = app.token_for(&after, None).await;
    let form = multipart(RECEIVER)
        .part("photo_id_front", file_part(png(500), "image/png"))
        .part("photo_id_back", file_part(png(600), "image/jpeg"));
    accepted_id(&put_multipart(&app, &token_after, form).await);

    // A client that sends a file first is still understood.
    let before = Keypair::random();
    let token_before = app.token_for(&before, None).await;
    let form = RECEIVER.iter().fold(
        Form::new().part("photo_id_front", file_part(png(700), "image/png")),
        |form, (k, v)| form.text(k.to_string(), v.to_string()),
    );
    accepted_id(&put_multipart(&app, &token_before, form).await);

    for (token, files) in [
        (&token_after, &["photo_id_back", "photo_id_front"][..]),
        (&token_before, &["photo_id_front"][..]),
    ] {
        let (status, body) = get(&app, token, &[("type", "sep31-receiver")]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ACCEPTED", "{body}");
        for name in files {
            assert_eq!(body["provided_fields"][name]["type"], "binary", "{body}");
        }
        assert_eq!(body["provided_fields"]["bank_number"]["status"], "ACCEPTED");
    }
}

async fn sep12_06_customers_are_keyed_on_the_token_subject(db: Option<String>) {
    let app = spawn(db, "").await;

    // sub = G: the customer belongs to the account, whichever of its tokens asks.
    let plain = Keypair::random();
    let first = app.token_for(&plain, None).await;
    let id = register(&app, &first, &[]).await;
    let second = app.token_for(&plain, None).await;
    assert_customer(&get(&app, &second, &[]).await, &id, "ACCEPTED");

    // sub = G:memo and sub = M... name the same user of a shared account.
    let shared = Keypair::random();
    let memo_token = app.token_for(&shared, Some("5")).await;
    let id5 = register(&app, &memo_token, &[]).await;
    assert_ne!(id5, id);
    let m_token = muxed_token(&app, &shared, 5).await;
    assert_customer(&get(&app, &m_token, &[]).await, &id5, "ACCEPTED");
    assert_eq!(
        accepted_id(&put(&app, &m_token, &[("last_name", "Souza")]).await),
        id5,
        "the muxed token updates the G:5 customer"
    );
    let detail = admin_customer(&app, &id5).await;
    assert_eq!(detail["fields"]["last_name"]["value"], "Souza");
    assert_eq!(detail["memo"], "5");

    // Another user of the shared account has no customer yet.
    let other = app.token_for(&shared, Some("6")).await;
    assert_no_customer(&get(&app, &other, &[]).await);
    let m_other = muxed_token(&app, &shared, 6).await;
    assert_no_customer(&get(&app, &m_other, &[]).await);
}

async fn sep12_07_request_memo_must_match_the_token_memo(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let one = app.token_for(&key, Some("1")).await;

    let mismatch = [("memo", "2"), ("memo_type", "id")];
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&mismatch).copied().collect();
    assert_error(&put(&app, &one, &pairs).await, 403, "memo does not match");
    assert_error(
        &get(&app, &one, &mismatch).await,
        403,
        "memo does not match",
    );
    // The refused PUT stored nothing under memo 2.
    let whole = app.token_for(&key, None).await;
    assert_no_customer(&get(&app, &whole, &[("memo", "2")]).await);

    // The token's own memo is fine, sent or not.
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&[("memo", "1")]).copied().collect();
    let id = accepted_id(&put(&app, &one, &pairs).await);
    assert_customer(&get(&app, &one, &[("memo", "1")]).await, &id, "ACCEPTED");
    assert_customer(&get(&app, &one, &[]).await, &id, "ACCEPTED");

    // For a muxed token the memo is its muxed id.
    let m1 = muxed_token(&app, &key, 1).await;
    assert_customer(&get(&app, &m1, &[("memo", "1")]).await, &id, "ACCEPTED");
    assert_error(
        &get(&app, &m1, &[("memo", "2")]).await,
        403,
        "memo does not match",
    );
    assert_error(
        &send(
            &app,
            Method::PUT,
            "/customer/callback",
            Some(&m1),
            Enc::Json,
            &[("memo", "3"), ("url", "http://127.0.0.1:9/cb")],
        )
        .await,
        403,
        "memo does not match",
    );
}

async fn sep12_08_plain_account_token_may_use_any_memo(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let mut ids = Vec::new();
    for memo in [
        &[("memo", "100"), ("memo_type", "id")][..],
        &[("memo", "200"), ("memo_type", "id")][..],
        &[("memo", "alice"), ("memo_type", "text")][..],
    ] {
        let pairs: Vec<(&str, &str)> = SENDER.iter().chain(memo).copied().collect();
        ids.push(accepted_id(&put(&app, &token, &pairs).await));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one customer per memo: {ids:?}");

    let (_, body) = get(&app, &token, &[("memo", "100")]).await;
    let id100 = body["id"].as_str().unwrap().to_owned();
    let (_, body) = get(&app, &token, &[("memo", "200")]).await;
    let id200 = body["id"].as_str().unwrap().to_owned();
    assert_ne!(id100, id200);
    assert_customer(
        &get(&app, &token, &[("memo", "alice"), ("memo_type", "text")]).await,
        ids.iter().find(|i| **i != id100 && **i != id200).unwrap(),
        "ACCEPTED",
    );

    // The user's own token (sub = G:100) reaches the customer its account filed for it,
    // and only that one.
    let user = app.token_for(&key, Some("100")).await;
    assert_customer(&get(&app, &user, &[]).await, &id100, "ACCEPTED");
    assert_error(
        &get(&app, &user, &[("id", &id200)]).await,
        404,
        &format!("customer not found for id: {id200}"),
    );
}

async fn sep12_09_an_account_is_shared_or_not(db: Option<String>) {
    let app = spawn(db, "").await;

    // Registered with a memo: shared; a customer without a memo is refused.
    let shared = Keypair::random();
    let token = app.token_for(&shared, None).await;
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&[("memo", "1")]).copied().collect();
    accepted_id(&put(&app, &token, &pairs).await);
    assert_error(&put(&app, &token, SENDER).await, 400, "is shared");
    assert_no_customer(&get(&app, &token, &[]).await);

    // Registered without a memo: not shared; a memo is refused, from any token.
    let single = Keypair::random();
    let token = app.token_for(&single, None).await;
    register(&app, &token, &[]).await;
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&[("memo", "1")]).copied().collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        400,
        "not a shared account",
    );
    let user = app.token_for(&single, Some("1")).await;
    assert_error(&put(&app, &user, SENDER).await, 400, "not a shared account");
    assert_no_customer(&get(&app, &user, &[]).await);
}

async fn sep12_10_account_param_must_match_the_token(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let account = g(&key);
    let token = app.token_for(&key, None).await;

    // Absent: inferred from the token. Present: must be the token's.
    let id = register(&app, &token, &[("account", &account)]).await;
    assert_customer(
        &get(&app, &token, &[("account", &account)]).await,
        &id,
        "ACCEPTED",
    );
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");

    let stranger = g(&Keypair::random());
    assert_error(
        &get(&app, &token, &[("account", &stranger)]).await,
        403,
        "account does not match",
    );
    let pairs: Vec<(&str, &str)> = [("account", stranger.as_str()), ("first_name", "Eve")].to_vec();
    assert_error(
        &put(&app, &token, &pairs).await,
        403,
        "account does not match",
    );
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["first_name"]["value"],
        "Ana",
        "the refused PUT changed nothing"
    );
    assert_error(
        &get(&app, &token, &[("account", "GNOTANACCOUNT")]).await,
        400,
        "not a Stellar account",
    );

    // A memo-carrying token may name its base G account or its own M address (as AP does),
    // not another user's.
    let shared = Keypair::random();
    let user = app.token_for(&shared, Some("7")).await;
    let id7 = register(&app, &user, &[("account", &g(&shared))]).await;
    assert_customer(
        &get(&app, &user, &[("account", &muxed(&shared, 7))]).await,
        &id7,
        "ACCEPTED",
    );
    assert_error(
        &get(&app, &user, &[("account", &muxed(&shared, 8))]).await,
        403,
        "account does not match",
    );
}

async fn sep12_11_memo_types_id_text_hash(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let with =
        |memo: &'static [(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            SENDER.iter().chain(memo).copied().collect()
        };

    // id memos are numbers: "007", "7" and a memo_type-less "7" are one customer.
    let id7 = accepted_id(&put(&app, &token, &with(&[("memo", "7"), ("memo_type", "id")])).await);
    assert_eq!(
        accepted_id(&put(&app, &token, &with(&[("memo", "007"), ("memo_type", "id")])).await),
        id7
    );
    assert_customer(&get(&app, &token, &[("memo", "7")]).await, &id7, "ACCEPTED");

    let text = accepted_id(
        &put(
            &app,
            &token,
            &with(&[("memo", "invoice-42"), ("memo_type", "text")]),
        )
        .await,
    );
    assert_ne!(text, id7);
    assert_customer(
        &get(
            &app,
            &token,
            &[("memo", "invoice-42"), ("memo_type", "text")],
        )
        .await,
        &text,
        "ACCEPTED",
    );

    // A hash memo is the base64 of 32 bytes.
    const HASH: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let hashed = accepted_id(
        &put(
            &app,
            &token,
            &with(&[("memo", HASH), ("memo_type", "hash")]),
        )
        .await,
    );
    assert!(hashed != id7 && hashed != text);
    assert_customer(
        &get(&app, &token, &[("memo", HASH), ("memo_type", "hash")]).await,
        &hashed,
        "ACCEPTED",
    );
    assert_eq!(admin_customer(&app, &hashed).await["memo_type"], "hash");

    // Malformed memos, for their type.
    assert_error(
        &get(&app, &token, &[("memo", "abc"), ("memo_type", "id")]).await,
        400,
        "not an id memo",
    );
    assert_error(
        &get(
            &app,
            &token,
            &[("memo", "18446744073709551616"), ("memo_type", "id")],
        )
        .await,
        400,
        "not an id memo",
    );
    assert_error(
        &get(&app, &token, &[("memo", "AQIDBA=="), ("memo_type", "hash")]).await,
        400,
        "32 bytes",
    );
    assert_error(
        &get(
            &app,
            &token,
            &[("memo", "not base64!"), ("memo_type", "hash")],
        )
        .await,
        400,
        "32 bytes",
    );
    let long = "x".repeat(29);
    assert_error(
        &get(&app, &token, &[("memo", &long), ("memo_type", "text")]).await,
        400,
        "28 bytes",
    );
    assert_error(
        &get(&app, &token, &[("memo", "7"), ("memo_type", "return")]).await,
        400,
        "memo_type",
    );

    // With a memo-carrying token, memo_type may come along with the token's memo.
    let user = app.token_for(&key, Some("7")).await;
    assert_customer(
        &get(&app, &user, &[("memo", "7"), ("memo_type", "id")]).await,
        &id7,
        "ACCEPTED",
    );
}

async fn sep12_12_unknown_customer_is_needs_info_with_fields(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;

    // No parameters: the default type (sep31-sender).
    let got = get(&app, &token, &[]).await;
    assert_no_customer(&got);
    assert_eq!(keys(&got.1["fields"]), SENDER_FIELDS);
    for name in ["first_name", "last_name", "email_address"] {
        assert_eq!(got.1["fields"][name]["optional"], false, "{name}");
    }
    for name in ["mobile_number", "birth_date"] {
        assert_eq!(got.1["fields"][name]["optional"], true, "{name}");
    }

    let got = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_no_customer(&got);
    assert_eq!(keys(&got.1["fields"]), RECEIVER_FIELDS);

    // An account and memo nobody registered, named explicitly.
    let got = get(
        &app,
        &token,
        &[
            ("account", &g(&key)),
            ("memo", "55"),
            ("type", "sep31-sender"),
        ],
    )
    .await;
    assert_no_customer(&got);
    assert_eq!(keys(&got.1["fields"]), SENDER_FIELDS);
}

// ---- §4.2 GET /customer --------------------------------------------------------------------

async fn sep12_13_status_is_always_present(db: Option<String>) {
    let app = spawn(db, r#"review = "manual""#).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let statuses = ["ACCEPTED", "PROCESSING", "NEEDS_INFO", "REJECTED"];
    let mut seen = Vec::new();
    let mut look = async |query: &[(&str, &str)]| {
        let (status, body) = get(&app, &token, query).await;
        assert_eq!(status, 200, "{body}");
        let value = body["status"]
            .as_str()
            .unwrap_or_else(|| panic!("no status: {body}"));
        assert!(statuses.contains(&value), "{body}");
        seen.push(value.to_owned());
        body
    };

    look(&[]).await;
    let id = accepted_id(&put(&app, &token, &[("first_name", "Ana")]).await);
    look(&[]).await;
    put(&app, &token, SENDER).await;
    look(&[("id", &id)]).await;
    let (status, _) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/accept"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    look(&[]).await;
    let (status, _) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/reject"),
        Some(json!({"reason": "document forged"})),
    )
    .await;
    assert_eq!(status, 200);
    look(&[("type", "sep31-receiver")]).await;
    assert_eq!(
        seen,
        [
            "NEEDS_INFO",
            "NEEDS_INFO",
            "PROCESSING",
            "ACCEPTED",
            "REJECTED"
        ],
        "every status on the way, each reported"
    );
}

async fn sep12_13a_needs_info_has_fields(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;

    // A missing required field is listed, as required.
    let id = accepted_id(&put(&app, &token, &[("first_name", "Ana")]).await);
    let (status, body) = get(&app, &token, &[]).await;
    assert_eq!(status, 200);
    assert_customer(&(status, body.clone()), &id, "NEEDS_INFO");
    assert_eq!(body["fields"]["last_name"]["optional"], false, "{body}");
    assert_eq!(body["fields"]["email_address"]["optional"], false, "{body}");
    assert!(body["fields"].get("first_name").is_none(), "{body}");

    // Every field sent, one waiting for its code: NEEDS_INFO still carries `fields`, even
    // with nothing left to list.
    put(
        &app,
        &token,
        &[
            ("type", "phone-verified"),
            ("mobile_number", "+14155552671"),
        ],
    )
    .await;
    let (status, body) = get(&app, &token, &[("type", "phone-verified")]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "NEEDS_INFO", "{body}");
    assert_eq!(body["fields"], json!({}), "{body}");
    assert_eq!(
        body["provided_fields"]["mobile_number"]["status"],
        "VERIFICATION_REQUIRED"
    );
}

async fn sep12_13b_rejected_carries_a_message(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[]).await;
    let reason = "the name matches a sanctions list entry";

    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/reject"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400, "a rejection needs its message: {body}");

    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/reject"),
        Some(json!({"reason": reason})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for query in [
        &[][..],
        &[("id", id.as_str())][..],
        &[("type", "sep31-receiver")][..],
    ] {
        let got = get(&app, &token, query).await;
        assert_customer(&got, &id, "REJECTED");
        assert_eq!(got.1["message"], reason, "{query:?}");
    }
}

async fn sep12_14_accepted_has_no_required_fields_left(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[]).await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "ACCEPTED");
    let fields = got.1["fields"]
        .as_object()
        .expect("optional fields remain listed");
    assert_eq!(keys(&got.1["fields"]), ["birth_date", "mobile_number"]);
    assert!(fields.values().all(|f| f["optional"] == true), "{}", got.1);
    assert_eq!(
        keys(&got.1["provided_fields"]),
        ["email_address", "first_name", "last_name"]
    );

    // Receiver: every required field accepted, the optional ones still offered.
    let receiver = Keypair::random();
    let token = app.token_for(&receiver, None).await;
    accepted_id(&put(&app, &token, RECEIVER).await);
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(body["status"], "ACCEPTED", "{body}");
    assert!(
        body["fields"]
            .as_object()
            .unwrap()
            .values()
            .all(|f| f["optional"] == true),
        "{body}"
    );
}

async fn sep12_15_provided_fields_carry_their_status(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[("mobile_number", "+14155550123")]).await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    let provided = &got.1["provided_fields"];
    assert_eq!(
        keys(provided),
        ["email_address", "first_name", "last_name", "mobile_number"]
    );
    assert_eq!(provided["mobile_number"]["status"], "VERIFICATION_REQUIRED");
    assert_eq!(provided["mobile_number"]["optional"], true);
    for name in ["email_address", "first_name", "last_name"] {
        let field = &provided[name];
        assert_eq!(field["status"], "ACCEPTED", "{name}");
        assert_eq!(field["type"], "string", "{name}");
        assert_eq!(field["optional"], false, "{name}");
        assert!(!field["description"].as_str().unwrap().is_empty(), "{name}");
        assert!(field.get("error").is_none(), "{name}");
    }
    // Values are never echoed back to the client.
    assert!(!got.1.to_string().contains("+14155550123"), "{}", got.1);
    assert!(got.1["fields"].get("mobile_number").is_none());
}

async fn sep12_16_all_required_accepted_is_accepted(db: Option<String>) {
    // Reviewed by an operator: PROCESSING until accepted.
    let app = spawn(db, r#"review = "manual""#).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[]).await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "PROCESSING");
    for name in ["email_address", "first_name", "last_name"] {
        assert_eq!(
            got.1["provided_fields"][name]["status"], "PROCESSING",
            "{name}"
        );
    }
    let (_, list) = admin(
        &app,
        Method::GET,
        "/admin/customers?pending_review=true",
        None,
    )
    .await;
    assert_eq!(list["customers"][0]["id"], id.as_str(), "{list}");

    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/accept"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "ACCEPTED");
    for name in ["email_address", "first_name", "last_name"] {
        assert_eq!(
            got.1["provided_fields"][name]["status"], "ACCEPTED",
            "{name}"
        );
    }

    // Missing one required field is never ACCEPTED, even in a type the rest satisfies.
    let partial = Keypair::random();
    let token = app.token_for(&partial, None).await;
    let pid = accepted_id(&put(&app, &token, &SENDER[..2]).await);
    admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{pid}/accept"),
        None,
    )
    .await;
    assert_customer(&get(&app, &token, &[]).await, &pid, "NEEDS_INFO");
}

async fn sep12_17_fields_are_sep9_names_with_type_and_description(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    for (kind, expected) in [
        ("sep31-sender", SENDER_FIELDS),
        ("sep31-receiver", RECEIVER_FIELDS),
    ] {
        let (status, body) = get(&app, &token, &[("type", kind)]).await;
        assert_eq!(status, 200);
        assert_eq!(keys(&body["fields"]), expected, "{kind}");
        for (name, field) in body["fields"].as_object().unwrap() {
            assert!(
                ["string", "binary", "number", "date"].contains(&field["type"].as_str().unwrap()),
                "{name}: {field}"
            );
            let description = field["description"].as_str().unwrap();
            assert!(description.len() > 3, "{name}: {field}");
            assert!(field["optional"].is_boolean(), "{name}: {field}");
        }
    }
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(
        body["fields"]["sex"]["choices"],
        json!(["male", "female", "other"])
    );
    assert!(body["fields"]["first_name"].get("choices").is_none());
}

async fn sep12_18_status_differs_per_type(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[]).await;
    assert_customer(
        &get(&app, &token, &[("type", "sep31-sender")]).await,
        &id,
        "ACCEPTED",
    );
    let got = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(got.1["fields"]["bank_account_number"]["optional"], false);
    assert_eq!(got.1["fields"]["bank_number"]["optional"], false);
    assert!(got.1["fields"].get("first_name").is_none(), "{}", got.1);

    let more = [
        ("type", "sep31-receiver"),
        ("bank_account_number", "12345678"),
        ("bank_number", "021000021"),
    ];
    assert_eq!(accepted_id(&put(&app, &token, &more).await), id);
    assert_customer(
        &get(&app, &token, &[("type", "sep31-receiver")]).await,
        &id,
        "ACCEPTED",
    );
    assert_customer(
        &get(&app, &token, &[("id", &id), ("type", "sep31-sender")]).await,
        &id,
        "ACCEPTED",
    );
    // A type the customer never filled is judged on its own fields.
    assert_customer(
        &get(&app, &token, &[("type", "phone-verified")]).await,
        &id,
        "NEEDS_INFO",
    );
}

async fn sep12_19_transaction_id_requires_type(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    register(&app, &token, &[]).await;
    assert_error(
        &get(&app, &token, &[("transaction_id", "tx-1")]).await,
        400,
        "type is required with transaction_id",
    );
    assert_error(
        &put(
            &app,
            &token,
            &[("transaction_id", "tx-1"), ("first_name", "Ana")],
        )
        .await,
        400,
        "type is required with transaction_id",
    );
    // No SEP-31 transactions exist yet, so every transaction id is unknown.
    assert_error(
        &get(
            &app,
            &token,
            &[("transaction_id", "tx-1"), ("type", "sep31-sender")],
        )
        .await,
        404,
        "transaction not found",
    );
    assert_error(
        &put(
            &app,
            &token,
            &[
                ("transaction_id", "tx-1"),
                ("type", "sep31-receiver"),
                ("bank_number", "021000021"),
            ],
        )
        .await,
        404,
        "transaction not found",
    );
}

async fn sep12_20_requested_update_is_needs_info_with_provided_fields(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[("birth_date", "1990-02-28")]).await;
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");

    let reason = "the last name differs from your ID document";
    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/request-info"),
        Some(json!({"fields": {"last_name": reason}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    let body = &got.1;
    assert_eq!(
        keys(&body["provided_fields"]),
        ["birth_date", "email_address", "first_name", "last_name"],
        "every provided field is listed"
    );
    assert_eq!(body["provided_fields"]["last_name"]["status"], "REJECTED");
    assert_eq!(body["provided_fields"]["last_name"]["error"], reason);
    assert_eq!(body["provided_fields"]["first_name"]["status"], "ACCEPTED");
    assert_eq!(body["fields"]["last_name"]["optional"], false, "{body}");
    assert!(body["message"].as_str().unwrap().contains(reason), "{body}");

    // Sending the field again settles it.
    assert_eq!(
        accepted_id(&put(&app, &token, &[("last_name", "Silva Santos")]).await),
        id
    );
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "ACCEPTED");
    assert_eq!(got.1["provided_fields"]["last_name"]["status"], "ACCEPTED");
    assert!(got.1["provided_fields"]["last_name"].get("error").is_none());
    assert!(got.1.get("message").is_none(), "{}", got.1);

    // A field beyond the customer's type (collected by another type) can be asked for and
    // then sent.
    admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/request-info"),
        Some(json!({"fields": {"bank_number": "needed for payouts over 1000"}})),
    )
    .await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(got.1["fields"]["bank_number"]["optional"], false);
    assert!(got.1["provided_fields"].get("bank_number").is_none());
    put(&app, &token, &[("bank_number", "021000021")]).await;
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");

    // So can a field no type collects: once asked for, the client may send it.
    assert_error(
        &put(&app, &token, &[("tax_id", "123-45-6789")]).await,
        400,
        "not a field this anchor collects",
    );
    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/admin/customers/{id}/request-info"),
        Some(json!({"fields": {"tax_id": "required above the reporting threshold"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(got.1["fields"]["tax_id"]["optional"], false, "{}", got.1);
    assert_eq!(
        accepted_id(&put(&app, &token, &[("tax_id", "123-45-6789")]).await),
        id
    );
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["tax_id"]["value"],
        "123-45-6789"
    );
}

async fn sep12_21_foreign_or_unknown_id_is_404(db: Option<String>) {
    let app = spawn(db, "").await;
    let owner = Keypair::random();
    let owner_token = app.token_for(&owner, None).await;
    let one = app.token_for(&owner, Some("1")).await;
    let two = app.token_for(&owner, Some("2")).await;
    let id1 = register(&app, &one, &[]).await;
    let id2 = register(&app, &two, &[]).await;
    let stranger = app.token_for(&Keypair::random(), None).await;

    let unknown = "9b2f7f5e-0000-4000-8000-000000000000";
    for (token, id) in [
        (&owner_token, unknown),
        (&stranger, &id1),
        (&one, &id2),
        (&two, &id1),
    ] {
        let got = get(&app, token, &[("id", id)]).await;
        assert_eq!(got.0, 404, "{}", got.1);
        assert_eq!(
            got.1,
            json!({"error": format!("customer not found for id: {id}")})
        );
    }
    // The owner's own tokens do see them: the whole account both, each user its own.
    assert_customer(
        &get(&app, &owner_token, &[("id", &id1)]).await,
        &id1,
        "ACCEPTED",
    );
    assert_customer(
        &get(&app, &owner_token, &[("id", &id2)]).await,
        &id2,
        "ACCEPTED",
    );
    assert_customer(&get(&app, &two, &[("id", &id2)]).await, &id2, "ACCEPTED");
}

async fn sep12_22_other_invalid_requests_are_400(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    assert_error(
        &get(&app, &token, &[("type", "sep6-deposit")]).await,
        400,
        "unknown type: sep6-deposit",
    );
    let response = app
        .http
        .put(format!("{}/customer?first_name=Ana", app.kyc_url()))
        .bearer_auth(&token)
        .json(&json!({"first_name": "Ana"}))
        .send()
        .await
        .unwrap();
    assert_error(&answer(response).await, 400, "first_name is given twice");
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/json")
        .body("{\"first_name\": ")
        .send()
        .await
        .unwrap();
    assert_error(&answer(response).await, 400, "invalid JSON body");
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(&token)
        .json(&json!(["first_name", "Ana"]))
        .send()
        .await
        .unwrap();
    assert_error(&answer(response).await, 400, "must be an object");
    assert_no_customer(&get(&app, &token, &[]).await);
}

// ---- §4.3 PUT /customer --------------------------------------------------------------------

async fn sep12_23_put_takes_json_form_and_multipart(db: Option<String>) {
    let app = spawn(db, "").await;
    for enc in ENCODINGS {
        let key = Keypair::random();
        let token = app.token_for(&key, None).await;
        let id =
            accepted_id(&send(&app, Method::PUT, "/customer", Some(&token), enc, RECEIVER).await);
        let got = get(&app, &token, &[("type", "sep31-receiver")]).await;
        assert_customer(&got, &id, "ACCEPTED");
        let detail = admin_customer(&app, &id).await;
        for (name, value) in &RECEIVER[1..] {
            assert_eq!(detail["fields"][name]["value"], *value, "{enc:?} {name}");
        }
        assert_eq!(detail["type"], "sep31-receiver", "{enc:?}");

        // A binary field is never a text value, whatever the encoding.
        let got = send(
            &app,
            Method::PUT,
            "/customer",
            Some(&token),
            enc,
            &[("photo_id_front", "iVBORw0KGgo=")],
        )
        .await;
        assert_error(&got, 400, "photo_id_front is a binary field");
    }
    // It arrives as a file part, or as the id of an upload.
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let form = multipart(RECEIVER).part("photo_id_front", file_part(png(100), "image/png"));
    let id = accepted_id(&put_multipart(&app, &token, form).await);
    let (_, uploaded) = post_file(&app, &token, png(200), "image/jpeg").await;
    let file_id = uploaded["file_id"].as_str().unwrap();
    assert_eq!(
        accepted_id(&put(&app, &token, &[("photo_id_back_file_id", file_id)]).await),
        id
    );
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(
        body["provided_fields"]["photo_id_front"]["status"], "ACCEPTED",
        "{body}"
    );
    assert_eq!(
        body["provided_fields"]["photo_id_back"]["status"], "ACCEPTED",
        "{body}"
    );
}

async fn sep12_24_put_stores_and_answers_202_with_a_stable_id(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[]).await;
    // The same data again, an update, and an id alone: always the same customer.
    assert_eq!(register(&app, &token, &[]).await, id);
    assert_eq!(
        accepted_id(
            &put(
                &app,
                &token,
                &[("birth_date", "1980-01-31"), ("lang", "pt")]
            )
            .await
        ),
        id
    );
    assert_eq!(accepted_id(&put(&app, &token, &[("id", &id)]).await), id);
    assert_eq!(
        accepted_id(&put(&app, &token, &[("id", &id), ("last_name", "Pereira")]).await),
        id
    );
    let detail = admin_customer(&app, &id).await;
    assert_eq!(detail["fields"]["last_name"]["value"], "Pereira");
    assert_eq!(detail["fields"]["birth_date"]["value"], "1980-01-31");
    assert_eq!(detail["fields"]["first_name"]["value"], "Ana");
    // The id names the customer in later requests.
    let got = get(&app, &token, &[("id", &id), ("lang", "pt")]).await;
    assert_customer(&got, &id, "ACCEPTED");
    let (_, list) = admin(&app, Method::GET, "/admin/customers", None).await;
    assert_eq!(list["customers"].as_array().unwrap().len(), 1, "{list}");
}

async fn sep12_25_put_with_unknown_or_foreign_id_is_404(db: Option<String>) {
    let app = spawn(db, "").await;
    let owner = Keypair::random();
    let owner_token = app.token_for(&owner, None).await;
    let id = register(&app, &owner_token, &[]).await;
    let stranger = Keypair::random();
    let stranger_token = app.token_for(&stranger, None).await;

    let unknown = "00000000-0000-4000-8000-000000000000";
    let got = put(
        &app,
        &owner_token,
        &[("id", unknown), ("first_name", "Ana")],
    )
    .await;
    assert_eq!(
        got,
        (
            404,
            json!({"error": format!("customer not found for id: {unknown}")})
        )
    );
    let got = put(
        &app,
        &stranger_token,
        &[("id", &id), ("first_name", "Mallory")],
    )
    .await;
    assert_eq!(
        got,
        (
            404,
            json!({"error": format!("customer not found for id: {id}")})
        )
    );
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["first_name"]["value"],
        "Ana"
    );
    assert_no_customer(&get(&app, &stranger_token, &[]).await);
}

async fn sep12_26_every_error_body_carries_error(db: Option<String>) {
    let app = spawn(db, "max_file_bytes = 4096").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let user = app.token_for(&Keypair::random(), Some("3")).await;
    let mut errors = vec![
        get(&app, &token, &[("type", "nope")]).await,
        get(&app, &token, &[("id", "nope")]).await,
        get(&app, &user, &[("memo", "4")]).await,
        put(&app, &token, &[("favourite_colour", "blue")]).await,
        send(&app, Method::GET, "/customer", None, Enc::Json, &[]).await,
        send(
            &app,
            Method::DELETE,
            &format!("/customer/{}", g(&key)),
            Some(&token),
            Enc::Json,
            &[],
        )
        .await,
        send(
            &app,
            Method::PUT,
            "/customer/callback",
            Some(&token),
            Enc::Json,
            &[("url", "http://127.0.0.1:9/cb")],
        )
        .await,
        send(
            &app,
            Method::PUT,
            "/customer/verification",
            Some(&token),
            Enc::Json,
            &[],
        )
        .await,
        get_files(&app, &token, &[]).await,
        post_file(&app, &token, png(5000), "image/png").await,
        send(
            &app,
            Method::POST,
            "/customer",
            Some(&token),
            Enc::Json,
            &[],
        )
        .await,
        send(
            &app,
            Method::GET,
            "/no-such-endpoint",
            Some(&token),
            Enc::Json,
            &[],
        )
        .await,
    ];
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/xml")
        .body("<customer/>")
        .send()
        .await
        .unwrap();
    errors.push(answer(response).await);
    let statuses: Vec<u16> = errors.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [
            400, 404, 403, 400, 403, 404, 404, 400, 400, 413, 405, 404, 415
        ]
    );
    for (status, body) in &errors {
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: {body}"));
        assert!(message.len() > 5, "{status}: {body}");
    }
}

async fn sep12_27_verification_codes_go_through_put(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[("mobile_number", "+14155552671")]).await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(
        got.1["provided_fields"]["mobile_number"]["status"],
        "VERIFICATION_REQUIRED"
    );
    let code = verification_code(&app, &id, "mobile_number").await;

    assert_error(
        &put(
            &app,
            &token,
            &[("mobile_number_verification", wrong_code(&code))],
        )
        .await,
        400,
        "the code is not the one sent for mobile_number",
    );
    assert_customer(&get(&app, &token, &[]).await, &id, "NEEDS_INFO");

    assert_eq!(
        accepted_id(&put(&app, &token, &[("mobile_number_verification", &code)]).await),
        id
    );
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "ACCEPTED");
    assert_eq!(
        got.1["provided_fields"]["mobile_number"]["status"],
        "ACCEPTED"
    );
    assert!(
        admin_customer(&app, &id).await["fields"]["mobile_number"]["verification_code"].is_null()
    );
    // A code is used once.
    assert_error(
        &put(&app, &token, &[("mobile_number_verification", &code)]).await,
        400,
        "not waiting for a verification code",
    );

    // A new number needs a new code; the code comes with the id alone.
    put(&app, &token, &[("mobile_number", "+5511987654321")]).await;
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(
        got.1["provided_fields"]["mobile_number"]["status"],
        "VERIFICATION_REQUIRED"
    );
    let fresh = verification_code(&app, &id, "mobile_number").await;
    assert_error(
        &put(
            &app,
            &token,
            &[
                ("mobile_number", "+5511987650000"),
                ("mobile_number_verification", &fresh),
            ],
        )
        .await,
        400,
        "being changed in the same request",
    );
    assert_eq!(
        accepted_id(
            &put(
                &app,
                &token,
                &[("id", &id), ("mobile_number_verification", &fresh)]
            )
            .await
        ),
        id
    );
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");
}

async fn sep12_28_memos_differentiate_customers(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let account = g(&key);
    let mut ids = Vec::new();
    for memo in ["1", "2"] {
        let token = app.token_for(&key, Some(memo)).await;
        let pairs: Vec<(&str, &str)> = [
            ("account", account.as_str()),
            ("memo", memo),
            ("memo_type", "id"),
        ]
        .into_iter()
        .chain(SENDER.iter().copied())
        .collect();
        let id = accepted_id(&put(&app, &token, &pairs).await);
        let got = get(
            &app,
            &token,
            &[("account", &account), ("memo", memo), ("memo_type", "id")],
        )
        .await;
        assert_customer(&got, &id, "ACCEPTED");
        ids.push((token, id));
    }
    assert_ne!(ids[0].1, ids[1].1, "two memos, two customers");
    assert_error(
        &get(&app, &ids[0].0, &[("id", &ids[1].1)]).await,
        404,
        "customer not found for id",
    );
    assert_error(
        &get(&app, &ids[1].0, &[("id", &ids[0].1)]).await,
        404,
        "customer not found for id",
    );
}

// ---- §4.4 PUT /customer/verification -----------------------------------------------------

async fn sep12_29_deprecated_verification_endpoint(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let id = register(&app, &token, &[("mobile_number", "+14155552671")]).await;
    let code = verification_code(&app, &id, "mobile_number").await;
    let verify = async |pairs: &[(&str, &str)]| {
        send(
            &app,
            Method::PUT,
            "/customer/verification",
            Some(&token),
            Enc::Json,
            pairs,
        )
        .await
    };

    assert_error(
        &verify(&[("mobile_number_verification", &code)]).await,
        400,
        "id is required",
    );
    assert_error(&verify(&[("id", &id)]).await, 400, "at least one");
    assert_error(
        &verify(&[("id", &id), ("mobile_number", &code)]).await,
        400,
        "not a <field>_verification parameter",
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_error(
        &verify(&[("id", unknown), ("mobile_number_verification", &code)]).await,
        404,
        &format!("customer not found for id: {unknown}"),
    );
    let stranger = app.token_for(&Keypair::random(), None).await;
    assert_error(
        &send(
            &app,
            Method::PUT,
            "/customer/verification",
            Some(&stranger),
            Enc::Json,
            &[("id", &id), ("mobile_number_verification", &code)],
        )
        .await,
        404,
        "customer not found for id",
    );
    assert_error(
        &verify(&[
            ("id", &id),
            ("mobile_number_verification", wrong_code(&code)),
        ])
        .await,
        400,
        "the code is not the one sent",
    );

    let (status, body) = verify(&[("id", &id), ("mobile_number_verification", &code)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "ACCEPTED", "{body}");
    assert_eq!(
        body["provided_fields"]["mobile_number"]["status"],
        "ACCEPTED"
    );
    assert_eq!(
        get(&app, &token, &[]).await.1,
        body,
        "the answer is the GET body"
    );
}

// ---- §4.5 DELETE /customer/{account} -------------------------------------------------------

async fn delete(
    app: &TestApp,
    token: &str,
    account: &str,
    enc: Enc,
    pairs: &[(&str, &str)],
) -> (u16, Value) {
    send(
        app,
        Method::DELETE,
        &format!("/customer/{account}"),
        Some(token),
        enc,
        pairs,
    )
    .await
}

async fn sep12_30_only_the_owner_deletes(db: Option<String>) {
    let app = spawn(db, "").await;
    let owner = Keypair::random();
    let owner_token = app.token_for(&owner, None).await;
    let id = register(&app, &owner_token, &[]).await;
    let stranger = app.token_for(&Keypair::random(), None).await;
    assert_error(
        &delete(&app, &stranger, &g(&owner), Enc::Json, &[]).await,
        403,
        "its own account",
    );
    assert_customer(&get(&app, &owner_token, &[]).await, &id, "ACCEPTED");
    assert_error(
        &delete(&app, &owner_token, "GNOTANACCOUNT", Enc::Json, &[]).await,
        400,
        "not a Stellar account",
    );

    // One user of a shared account deletes only itself.
    let shared = Keypair::random();
    let whole = app.token_for(&shared, None).await;
    let user1 = app.token_for(&shared, Some("1")).await;
    let user2 = app.token_for(&shared, Some("2")).await;
    let id1 = register(&app, &user1, &[]).await;
    let id2 = register(&app, &user2, &[]).await;
    assert_error(
        &delete(&app, &user1, &g(&shared), Enc::Json, &[("memo", "2")]).await,
        403,
        "memo does not match",
    );
    assert_error(
        &delete(&app, &user1, &muxed(&shared, 2), Enc::Json, &[]).await,
        403,
        "its own account",
    );
    assert_customer(&get(&app, &whole, &[("memo", "2")]).await, &id2, "ACCEPTED");

    assert_eq!(
        delete(&app, &user1, &g(&shared), Enc::Json, &[]).await,
        (200, json!({}))
    );
    assert_error(
        &get(&app, &whole, &[("id", &id1)]).await,
        404,
        "customer not found for id",
    );
    assert_customer(&get(&app, &whole, &[("id", &id2)]).await, &id2, "ACCEPTED");
    // Through its muxed address too.
    let m2 = muxed_token(&app, &shared, 2).await;
    assert_eq!(
        delete(&app, &m2, &muxed(&shared, 2), Enc::Json, &[]).await,
        (200, json!({}))
    );
    assert_no_customer(&get(&app, &whole, &[("memo", "2")]).await);
}

async fn sep12_31_delete_erases_everything(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let form = multipart(RECEIVER).part("photo_id_front", file_part(png(400), "image/png"));
    let id = accepted_id(&put_multipart(&app, &token, form).await);
    let (_, spare) = post_file(&app, &token, png(300), "image/png").await;
    let spare = spare["file_id"].as_str().unwrap().to_owned();
    let (_, files) = get_files(&app, &token, &[("customer_id", &id)]).await;
    let attached = files["files"][0]["file_id"].as_str().unwrap().to_owned();
    let callback = send(
        &app,
        Method::PUT,
        "/customer/callback",
        Some(&token),
        Enc::Json,
        &[("url", "http://127.0.0.1:9/cb")],
    )
    .await;
    assert_eq!(callback.0, 200);

    assert_eq!(
        delete(&app, &token, &g(&key), Enc::Json, &[]).await,
        (200, json!({}))
    );

    assert_eq!(
        get(&app, &token, &[("id", &id)]).await,
        (
            404,
            json!({"error": format!("customer not found for id: {id}")})
        )
    );
    let got = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_no_customer(&got);
    assert_eq!(keys(&got.1["fields"]), RECEIVER_FIELDS);
    for file_id in [&attached, &spare] {
        assert_eq!(
            get_files(&app, &token, &[("file_id", file_id)]).await,
            (200, json!({"files": []}))
        );
        let (status, _) = admin(&app, Method::GET, &format!("/admin/files/{file_id}"), None).await;
        assert_eq!(status, 404, "file {file_id} is gone for the operator too");
    }
    assert_eq!(
        get_files(&app, &token, &[("customer_id", &id)]).await,
        (200, json!({"files": []}))
    );
    let (status, _) = admin(&app, Method::GET, &format!("/admin/customers/{id}"), None).await;
    assert_eq!(status, 404);
    let (_, list) = admin(&app, Method::GET, "/admin/customers", None).await;
    assert_eq!(list["customers"], json!([]));

    assert_error(
        &delete(&app, &token, &g(&key), Enc::Json, &[]).await,
        404,
        "no customer",
    );
    // Registering again makes a new customer.
    assert_ne!(register(&app, &token, &[]).await, id);
}

async fn sep12_32_shared_account_delete_takes_memo_in_any_body(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let account = g(&key);
    let token = app.token_for(&key, None).await;
    for memo in ["1", "2", "3", "4"] {
        let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&[("memo", memo)]).copied().collect();
        accepted_id(&put(&app, &token, &pairs).await);
    }
    for (memo, enc) in ["1", "2", "3"].into_iter().zip(ENCODINGS) {
        let deleted = delete(
            &app,
            &token,
            &account,
            enc,
            &[("memo", memo), ("memo_type", "id")],
        )
        .await;
        assert_eq!(deleted, (200, json!({})), "{enc:?}");
        assert_no_customer(&get(&app, &token, &[("memo", memo)]).await);
    }
    let (status, body) = get(&app, &token, &[("memo", "4")]).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("ACCEPTED")),
        "{body}"
    );
    // Without a memo, a shared account's delete names no customer.
    assert_error(
        &delete(&app, &token, &account, Enc::Json, &[]).await,
        404,
        "no customer",
    );
    assert_error(
        &delete(&app, &token, &account, Enc::Form, &[("memo", "1")]).await,
        404,
        "no customer",
    );
}

// ---- §4.6 PUT /customer/callback ------------------------------------------------------------

async fn sep12_33_callback_url_is_replaced(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let callback = async |token: &str, pairs: &[(&str, &str)]| {
        send(
            &app,
            Method::PUT,
            "/customer/callback",
            Some(token),
            Enc::Json,
            pairs,
        )
        .await
    };

    // Nobody to call back about yet.
    assert_error(
        &callback(&token, &[("url", "https://wallet.example.com/kyc/1")]).await,
        404,
        "no customer",
    );
    let id = register(&app, &token, &[]).await;

    assert_eq!(
        callback(&token, &[("url", "https://wallet.example.com/kyc/1")]).await,
        (200, json!({}))
    );
    let detail = admin_customer(&app, &id).await;
    assert_eq!(
        detail["callback"]["url"],
        "https://wallet.example.com/kyc/1"
    );
    assert_eq!(detail["callback"]["type"], "sep31-sender");

    assert_eq!(
        callback(
            &token,
            &[
                ("url", "https://wallet.example.com/kyc/2"),
                ("type", "sep31-receiver")
            ]
        )
        .await,
        (200, json!({}))
    );
    let detail = admin_customer(&app, &id).await;
    assert_eq!(
        detail["callback"]["url"],
        "https://wallet.example.com/kyc/2"
    );
    assert_eq!(detail["callback"]["type"], "sep31-receiver");

    assert_eq!(
        callback(&token, &[("id", &id), ("url", "http://127.0.0.1:9/kyc/3")]).await,
        (200, json!({}))
    );
    assert_eq!(
        admin_customer(&app, &id).await["callback"]["url"],
        "http://127.0.0.1:9/kyc/3"
    );

    // Refused: a bad or missing URL, an unknown type, someone else's customer.
    for url in [
        "not a url",
        "ftp://wallet.example.com/kyc",
        "mailto:ops@example.com",
    ] {
        assert_error(&callback(&token, &[("url", url)]).await, 400, "url");
    }
    assert_error(&callback(&token, &[]).await, 400, "url is required");
    assert_error(
        &callback(
            &token,
            &[("url", "https://w.example.com/k"), ("type", "sep6")],
        )
        .await,
        400,
        "unknown type",
    );
    let stranger = app.token_for(&Keypair::random(), None).await;
    assert_error(
        &callback(
            &stranger,
            &[("id", &id), ("url", "https://evil.example.com/k")],
        )
        .await,
        404,
        &format!("customer not found for id: {id}"),
    );
    assert_error(
        &callback(
            &token,
            &[
                ("id", "00000000-0000-4000-8000-000000000000"),
                ("url", "https://w.example.com/k"),
            ],
        )
        .await,
        404,
        "customer not found for id",
    );
    assert_eq!(
        admin_customer(&app, &id).await["callback"]["url"],
        "http://127.0.0.1:9/kyc/3",
        "refused requests left the registration alone"
    );
}

// ---- §4.7 files ---------------------------------------------------------------------------

async fn sep12_37_uploaded_file_ids_fill_binary_fields(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let bytes = png(1234);
    let (status, file) = post_file(&app, &token, bytes.clone(), "image/png").await;
    assert_eq!(status, 200, "{file}");
    let file_id = file["file_id"].as_str().unwrap().to_owned();
    assert_eq!(
        file,
        json!({"file_id": file_id, "content_type": "image/png", "size": 1234, "customer_id": null})
    );
    assert_eq!(
        get_files(&app, &token, &[("file_id", &file_id)]).await,
        (200, json!({"files": [file]}))
    );

    let pairs: Vec<(&str, &str)> = RECEIVER
        .iter()
        .copied()
        .chain([("photo_id_front_file_id", file_id.as_str())])
        .collect();
    let id = accepted_id(&put(&app, &token, &pairs).await);
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(
        body["provided_fields"]["photo_id_front"]["status"], "ACCEPTED",
        "{body}"
    );
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["photo_id_front"]["file_id"],
        file_id.as_str()
    );

    let attached =
        json!({"file_id": file_id, "content_type": "image/png", "size": 1234, "customer_id": id});
    assert_eq!(
        get_files(&app, &token, &[("file_id", &file_id)]).await,
        (200, json!({"files": [attached]}))
    );
    assert_eq!(
        get_files(&app, &token, &[("customer_id", &id)]).await,
        (200, json!({"files": [attached]}))
    );

    // Someone else's, or nobody's: an empty list, never an error.
    let stranger = app.token_for(&Keypair::random(), None).await;
    assert_eq!(
        get_files(&app, &stranger, &[("file_id", &file_id)]).await,
        (200, json!({"files": []}))
    );
    assert_eq!(
        get_files(&app, &stranger, &[("customer_id", &id)]).await,
        (200, json!({"files": []}))
    );
    assert_eq!(
        get_files(&app, &token, &[("file_id", "no-such-file")]).await,
        (200, json!({"files": []}))
    );
    assert_error(
        &get_files(&app, &token, &[]).await,
        400,
        "exactly one of file_id and customer_id",
    );
    assert_error(
        &get_files(&app, &token, &[("file_id", &file_id), ("customer_id", &id)]).await,
        400,
        "exactly one",
    );

    // Only the uploader's files, only for binary fields, each for one customer.
    let stolen = [("photo_id_front_file_id", file_id.as_str())];
    assert_error(&put(&app, &stranger, &stolen).await, 400, "no file");
    assert_no_customer(&get(&app, &stranger, &[]).await);
    assert_error(
        &put(&app, &token, &[("photo_id_back_file_id", "no-such-file")]).await,
        400,
        "no file",
    );
    let (_, other) = post_file(&app, &token, png(50), "image/png").await;
    let other_id = other["file_id"].as_str().unwrap();
    assert_error(
        &put(&app, &token, &[("first_name_file_id", other_id)]).await,
        400,
        "not a binary field",
    );

    // A file attached to one customer of a shared account is not another's.
    let shared = Keypair::random();
    let whole = app.token_for(&shared, None).await;
    let (_, upload) = send_file_for_memo(&app, &whole, "1").await;
    let upload_id = upload["file_id"].as_str().unwrap();
    let pairs: Vec<(&str, &str)> = RECEIVER
        .iter()
        .copied()
        .chain([("memo", "1"), ("photo_id_front_file_id", upload_id)])
        .collect();
    accepted_id(&put(&app, &whole, &pairs).await);
    let pairs: Vec<(&str, &str)> = RECEIVER
        .iter()
        .copied()
        .chain([("memo", "2"), ("photo_id_front_file_id", upload_id)])
        .collect();
    assert_error(
        &put(&app, &whole, &pairs).await,
        400,
        "already belongs to another customer",
    );
    assert_no_customer(&get(&app, &whole, &[("memo", "2")]).await);
    assert_error(
        &post_file(&app, &token, Vec::new(), "image/png").await,
        400,
        "empty",
    );
    let response = app
        .http
        .post(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(&token)
        .multipart(multipart(&[("first_name", "Ana")]))
        .send()
        .await
        .unwrap();
    assert_error(&answer(response).await, 400, "part named file");
}

/// `POST /customer/files` for one user (memo) of a shared account.
async fn send_file_for_memo(app: &TestApp, token: &str, memo: &str) -> (u16, Value) {
    let form = Form::new()
        .text("memo", memo.to_owned())
        .part("file", file_part(png(64), "image/png"));
    let response = app
        .http
        .post(format!("{}/customer/files", app.kyc_url()))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let got = answer(response).await;
    assert_eq!(got.0, 200, "{}", got.1);
    got
}

// ---- §7 SEP-9 -----------------------------------------------------------------------------

async fn sep9_01_only_sep9_names_are_taken(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    assert_error(
        &put(&app, &token, &[("favourite_colour", "blue")]).await,
        400,
        "unknown field: favourite_colour",
    );
    assert_error(
        &put(&app, &token, &[("firstName", "Ana")]).await,
        400,
        "unknown field: firstName",
    );
    // SEP-9 names no configured type collects.
    assert_error(
        &put(&app, &token, &[("tax_id", "123-45-6789")]).await,
        400,
        "tax_id is not a field this anchor collects",
    );
    assert_error(
        &put(&app, &token, &[("organization.name", "Acme")]).await,
        400,
        "organization.name is not a field this anchor collects",
    );
    assert_no_customer(&get(&app, &token, &[]).await);

    // Answers name fields by their SEP-9 names only.
    let id = register(&app, &token, &[("birth_date", "1970-01-01")]).await;
    let got = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    for name in keys(&got.1["fields"])
        .iter()
        .chain(&keys(&got.1["provided_fields"]))
    {
        assert!(RECEIVER_FIELDS.contains(&name.as_str()), "{name}");
    }
}

async fn sep9_02_formats_are_validated(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let receiver = |field: (&'static str, &'static str)| -> Vec<(&'static str, &'static str)> {
        RECEIVER.iter().copied().chain([field]).collect()
    };
    for (field, message) in [
        (
            ("birth_date", "04/07/1976"),
            "invalid birth_date: must be a date formatted YYYY-MM-DD",
        ),
        (("birth_date", "1976-02-30"), "invalid birth_date"),
        (("id_issue_date", "2020-13-01"), "invalid id_issue_date"),
        (
            ("id_expiration_date", "tomorrow"),
            "invalid id_expiration_date",
        ),
        (
            ("email_address", "ana.example.com"),
            "invalid email_address: must be an email address",
        ),
        (
            ("mobile_number", "0044 20 7946 0000"),
            "invalid mobile_number: must be a phone number in E.164",
        ),
        (
            ("address_country_code", "BR"),
            "invalid address_country_code: must be an ISO 3166-1 alpha-3",
        ),
        (
            ("sex", "unknown"),
            "invalid sex: must be one of: male, female, other",
        ),
        (
            ("first_name", "  "),
            "invalid first_name: must not be empty",
        ),
    ] {
        assert_error(&put(&app, &token, &receiver(field)).await, 400, message);
    }
    // A refused PUT leaves nothing behind.
    assert_no_customer(&get(&app, &token, &[("type", "sep31-receiver")]).await);

    let valid = [
        ("birth_date", "1976-07-04"),
        ("id_issue_date", "2020-02-29"),
        ("id_expiration_date", "2030-12-31"),
        ("mobile_number", "+5511987654321"),
        ("address_country_code", "BRA"),
        ("sex", "female"),
    ];
    let pairs: Vec<(&str, &str)> = RECEIVER.iter().chain(&valid).copied().collect();
    let id = accepted_id(&put(&app, &token, &pairs).await);
    let detail = admin_customer(&app, &id).await;
    for (name, value) in valid {
        assert_eq!(detail["fields"][name]["value"], value, "{name}");
    }
}

async fn sep9_03_field_types_map_onto_sep12_types(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    for (name, kind) in [
        ("first_name", "string"),
        ("bank_account_number", "string"),
        ("birth_date", "date"),
        ("id_issue_date", "date"),
        ("photo_id_front", "binary"),
        ("photo_id_back", "binary"),
        ("occupation", "number"),
    ] {
        assert_eq!(body["fields"][name]["type"], kind, "{name}");
    }
    // A number field takes a number, from JSON as well as text.
    let pairs: Vec<(&str, &str)> = RECEIVER
        .iter()
        .copied()
        .chain([("occupation", "21x")])
        .collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        400,
        "invalid occupation: must be a whole number",
    );
    let mut object: serde_json::Map<String, Value> = RECEIVER
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    object.insert("occupation".into(), json!(2120));
    let response = app
        .http
        .put(format!("{}/customer", app.kyc_url()))
        .bearer_auth(&token)
        .json(&object)
        .send()
        .await
        .unwrap();
    let id = accepted_id(&answer(response).await);
    let (_, body) = get(&app, &token, &[("type", "sep31-receiver")]).await;
    assert_eq!(body["provided_fields"]["occupation"]["type"], "number");
    assert_eq!(body["provided_fields"]["occupation"]["status"], "ACCEPTED");
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["occupation"]["value"],
        "2120"
    );
}

// ---- one test per error status ----------------------------------------------------------------

async fn error_400_unknown_type(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    let got = get(&app, &token, &[("type", "sep6-deposit")]).await;
    assert_error(&got, 400, "unknown type: sep6-deposit");
    assert!(
        got.1["error"]
            .as_str()
            .unwrap()
            .contains("sep31-receiver, sep31-sender"),
        "{}",
        got.1
    );
    let pairs: Vec<(&str, &str)> = SENDER
        .iter()
        .chain(&[("type", "sep6-deposit")])
        .copied()
        .collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        400,
        "unknown type: sep6-deposit",
    );
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_400_unknown_field_name(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    let pairs: Vec<(&str, &str)> = SENDER
        .iter()
        .chain(&[("shoe_size", "42")])
        .copied()
        .collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        400,
        "unknown field: shoe_size",
    );
    assert_error(
        &put(&app, &token, &[("shoe_size_verification", "123456")]).await,
        400,
        "unknown field: shoe_size",
    );
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_400_malformed_memo(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    for (memo, memo_type, needle) in [
        ("12ab", "id", "is not an id memo"),
        ("-1", "id", "is not an id memo"),
        ("c2hvcnQ=", "hash", "the base64 encoding of 32 bytes"),
        ("abcdefghijklmnopqrstuvwxyz123", "text", "28 bytes"),
    ] {
        let pairs: Vec<(&str, &str)> = SENDER
            .iter()
            .chain(&[("memo", memo), ("memo_type", memo_type)])
            .copied()
            .collect();
        assert_error(&put(&app, &token, &pairs).await, 400, needle);
    }
    let (_, list) = admin(&app, Method::GET, "/admin/customers", None).await;
    assert_eq!(list["customers"], json!([]));
}

async fn error_400_bad_memo_type(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    let pairs: Vec<(&str, &str)> = SENDER
        .iter()
        .chain(&[("memo", "1"), ("memo_type", "ID")])
        .copied()
        .collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        400,
        "memo_type \"ID\" is not one of id, text, hash",
    );
    assert_error(
        &get(&app, &token, &[("memo", "1"), ("memo_type", "return")]).await,
        400,
        "is not one of id, text, hash",
    );
    let (_, list) = admin(&app, Method::GET, "/admin/customers", None).await;
    assert_eq!(list["customers"], json!([]));
}

async fn error_403_account_mismatch(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    let other = g(&Keypair::random());
    let pairs: Vec<(&str, &str)> = SENDER
        .iter()
        .chain(&[("account", other.as_str())])
        .copied()
        .collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        403,
        "account does not match the authenticated account",
    );
    assert_error(
        &get(&app, &token, &[("account", &other)]).await,
        403,
        "account does not match",
    );
    assert_error(
        &delete(&app, &token, &other, Enc::Json, &[]).await,
        403,
        "its own account",
    );
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_403_memo_mismatch(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, Some("11")).await;
    let pairs: Vec<(&str, &str)> = SENDER.iter().chain(&[("memo", "12")]).copied().collect();
    assert_error(
        &put(&app, &token, &pairs).await,
        403,
        "memo does not match the authenticated account's memo (11)",
    );
    assert_error(
        &delete(&app, &token, &g(&key), Enc::Form, &[("memo", "12")]).await,
        403,
        "memo does not match",
    );
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_404_id_of_another_account(db: Option<String>) {
    let app = spawn(db, "").await;
    let owner = app.token_for(&Keypair::random(), None).await;
    let id = register(&app, &owner, &[]).await;
    let other = app.token_for(&Keypair::random(), None).await;
    let expected = (
        404,
        json!({"error": format!("customer not found for id: {id}")}),
    );
    assert_eq!(get(&app, &other, &[("id", &id)]).await, expected);
    assert_eq!(
        put(&app, &other, &[("id", &id), ("last_name", "X")]).await,
        expected
    );
    assert_eq!(
        admin_customer(&app, &id).await["fields"]["last_name"]["value"],
        "Silva"
    );
}

async fn error_413_oversized_upload_names_the_field(db: Option<String>) {
    let app = spawn(db, "max_file_bytes = 4096").await;
    let token = app.token_for(&Keypair::random(), None).await;
    let form = multipart(RECEIVER).part("photo_id_front", file_part(png(4097), "image/png"));
    let got = put_multipart(&app, &token, form).await;
    assert_error(&got, 413, "photo_id_front is larger than the 4096 bytes");
    assert_no_customer(&get(&app, &token, &[("type", "sep31-receiver")]).await);
    assert_error(
        &post_file(&app, &token, png(4097), "image/png").await,
        413,
        "file is larger than the 4096 bytes",
    );

    // The limit itself is allowed.
    let form = multipart(RECEIVER).part("photo_id_front", file_part(png(4096), "image/png"));
    accepted_id(&put_multipart(&app, &token, form).await);
    let (status, body) = post_file(&app, &token, png(4096), "image/png").await;
    assert_eq!((status, &body["size"]), (200, &json!(4096)), "{body}");
}

async fn error_415_wrong_content_type(db: Option<String>) {
    let app = spawn(db, "").await;
    let key = Keypair::random();
    let token = app.token_for(&key, None).await;
    for (method, path) in [
        (Method::PUT, "/customer".to_owned()),
        (Method::PUT, "/customer/callback".to_owned()),
        (Method::DELETE, format!("/customer/{}", g(&key))),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.kyc_url()))
            .bearer_auth(&token)
            .header(CONTENT_TYPE, "application/xml")
            .body("<first_name>Ana</first_name>")
            .send()
            .await
            .unwrap();
        assert_error(
            &answer(response).await,
            415,
            "content type application/xml is not accepted",
        );
    }
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_400_nested_json(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    for nested in [
        json!({"first_name": "Ana", "last_name": "Silva", "email_address": "ana@example.com", "organization": {"name": "Acme"}}),
        json!({"first_name": ["Ana", "Maria"], "last_name": "Silva", "email_address": "ana@example.com"}),
    ] {
        let response = app
            .http
            .put(format!("{}/customer", app.kyc_url()))
            .bearer_auth(&token)
            .json(&nested)
            .send()
            .await
            .unwrap();
        assert_error(&answer(response).await, 400, "must be a string or a number");
    }
    assert_no_customer(&get(&app, &token, &[]).await);
}

async fn error_403_missing_token(db: Option<String>) {
    let app = spawn(db, "").await;
    let got = send(&app, Method::PUT, "/customer", None, Enc::Json, SENDER).await;
    assert_error(&got, 403, "missing Authorization header");
    let got = send(&app, Method::GET, "/customer", None, Enc::Json, &[]).await;
    assert_error(&got, 403, "missing Authorization header");
    let (_, list) = admin(&app, Method::GET, "/admin/customers", None).await;
    assert_eq!(list["customers"], json!([]));
}

async fn error_400_binary_field_sent_as_text(db: Option<String>) {
    let app = spawn(db, "").await;
    let token = app.token_for(&Keypair::random(), None).await;
    let pairs: Vec<(&str, &str)> = RECEIVER
        .iter()
        .copied()
        .chain([("photo_id_front", "iVBORw0KGgo=")])
        .collect();
    for enc in ENCODINGS {
        let got = send(&app, Method::PUT, "/customer", Some(&token), enc, &pairs).await;
        assert_error(
            &got,
            400,
            "photo_id_front is a binary field: upload it as a file part",
        );
    }
    // The other way round: a text field sent as a file.
    let form = multipart(RECEIVER).part(
        "birth_date",
        file_part(b"1976-07-04".to_vec(), "application/octet-stream"),
    );
    assert_error(
        &put_multipart(&app, &token, form).await,
        400,
        "birth_date is a date field, not a file",
    );
    assert_no_customer(&get(&app, &token, &[("type", "sep31-receiver")]).await);
}

async fn error_400_wrong_verification_code(db: Option<String>) {
    let app = spawn(db, VERIFY).await;
    let token = app.token_for(&Keypair::random(), None).await;
    let id = register(&app, &token, &[("mobile_number", "+14155552671")]).await;
    let code = verification_code(&app, &id, "mobile_number").await;
    let got = put(
        &app,
        &token,
        &[("mobile_number_verification", wrong_code(&code))],
    )
    .await;
    assert_error(
        &got,
        400,
        "mobile_number_verification: the code is not the one sent for mobile_number",
    );
    // A field that waits for no code.
    assert_error(
        &put(&app, &token, &[("first_name_verification", &code)]).await,
        400,
        "first_name is not waiting for a verification code",
    );
    let got = get(&app, &token, &[]).await;
    assert_customer(&got, &id, "NEEDS_INFO");
    assert_eq!(
        got.1["provided_fields"]["mobile_number"]["status"],
        "VERIFICATION_REQUIRED"
    );

    // Guessing is bounded: the fifth wrong code in a row replaces the code, so the old one
    // is worthless and only the newly issued one works.
    for attempt in 2..=5 {
        let got = put(
            &app,
            &token,
            &[("mobile_number_verification", wrong_code(&code))],
        )
        .await;
        assert_eq!(got.0, 400, "attempt {attempt}: {}", got.1);
        let message = got.1["error"].as_str().unwrap();
        assert_eq!(
            message.contains("was replaced"),
            attempt == 5,
            "attempt {attempt}: {message}"
        );
    }
    let new_code = verification_code(&app, &id, "mobile_number").await;
    assert_ne!(new_code, code);
    assert_error(
        &put(
            &app,
            &token,
            &[("mobile_number_verification", code.as_str())],
        )
        .await,
        400,
        "the code is not the one sent for mobile_number",
    );
    let got = put(
        &app,
        &token,
        &[("mobile_number_verification", new_code.as_str())],
    )
    .await;
    assert_eq!(got.0, 202, "{}", got.1);
    assert_customer(&get(&app, &token, &[]).await, &id, "ACCEPTED");
}
