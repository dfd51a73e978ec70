//! HTTP: routing, query validation, problem+json errors, JSON pages and the SSE stream.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::submission::{self, LedgerView, Rejected};
use crate::{Msg, RequestLog, Shared, State, Sub, render};

const HELLO: &[u8] = b"retry: 1000\nevent: open\ndata: \"hello\"\n\n";
const BYEBYE: &str = "retry: 10\nevent: close\ndata: \"byebye\"\n\n";
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 200;
const PROBLEM_HOST: &str = "https://stellar.org/horizon-errors/";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// The most a `POST /transactions` body may have (Go's `ParseForm` reads at most 10 MiB).
const MAX_FORM_BYTES: usize = 10 << 20;

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map(|q| q.0);
    let cursor = query.as_ref().ok().and_then(|q| q.get("cursor").cloned());
    // The body is read before taking the lock.
    let submission = if parts.method == Method::POST && path.trim_matches('/') == "transactions" {
        Some(tx_param(&parts.headers, body, query.as_ref().ok()).await)
    } else {
        None
    };
    let mut state = shared.lock();
    let response = match submission {
        Some(tx) => submit(&shared, &mut state, tx),
        None => respond(
            &shared,
            &mut state,
            &parts.method,
            &parts.headers,
            &path,
            query.ok(),
        ),
    };
    state.requests.push(RequestLog {
        path,
        cursor,
        status: response.status().as_u16(),
    });
    response
}

/// Downtime and injected failures, which every request meets first.
fn misbehave(state: &mut State) -> Option<Response> {
    if state.down {
        return Some(problem(503, None));
    }
    if let Some(failure) = state.failure.as_mut() {
        failure.remaining -= 1;
        let (status, retry_after) = (failure.status, failure.retry_after);
        if failure.remaining == 0 {
            state.failure = None;
        }
        return Some(injected_failure(status, retry_after));
    }
    None
}

/// The `tx` parameter of `POST /transactions` as Horizon's `getString` reads it: the form body's
/// value (`application/x-www-form-urlencoded` or `multipart/form-data`), else the query's; any
/// other content type is a 415. Without a `Content-Type`, Go does not read the body at all.
async fn tx_param(
    headers: &HeaderMap,
    body: Body,
    query: Option<&HashMap<String, String>>,
) -> Result<String, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media_type = content_type.as_deref().map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let from_body = match media_type.as_deref() {
        None => None,
        Some("application/x-www-form-urlencoded") => {
            let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
                .await
                .unwrap_or_default();
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .ok()
                .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "tx"))
                .map(|(_, v)| v)
        }
        Some("multipart/form-data") => {
            use axum::extract::FromRequest as _;
            let request = Request::builder()
                .header(
                    header::CONTENT_TYPE,
                    content_type.clone().unwrap_or_default(),
                )
                .body(body)
                .expect("multipart request");
            let mut value = None;
            if let Ok(mut multipart) = axum::extract::Multipart::from_request(request, &()).await {
                while let Ok(Some(field)) = multipart.next_field().await {
                    if field.name() == Some("tx") {
                        value = field.text().await.ok();
                        break;
                    }
                }
            }
            value
        }
        Some(_) => return Err(problem(415, None)),
    };
    Ok(from_body
        .filter(|tx| !tx.is_empty())
        .or_else(|| query.and_then(|q| q.get("tx").cloned()))
        .unwrap_or_default())
}

/// `POST /transactions`: see `submission.rs`.
fn submit(shared: &Shared, state: &mut State, tx: Result<String, Response>) -> Response {
    if let Some(response) = misbehave(state) {
        return response;
    }
    let raw = match tx {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    let outcome = submission::decode(&raw, &state.network_id).and_then(|decoded| {
        decoded.horizon_precheck()?;
        // Already in the ledger: Horizon answers with the stored transaction.
        if let Some(body) = state.by_hash.get(&decoded.hash()) {
            return Ok(body.clone());
        }
        let account = decoded.sequence_account();
        let view = LedgerView {
            close_time: state.close_time(),
            next_ledger: state.ledger + 1,
            last_sequence: state.posted_sequences.get(&account).copied(),
        };
        let accepted = submission::apply(&decoded, &view)?;
        state
            .posted_sequences
            .insert(account, accepted.real.sequence);
        let appended = state.append_tx(&shared.url, accepted.tx, Some(&accepted.real));
        let mut answer = None;
        for (hash, body) in appended.resources {
            let body: Arc<str> = body.into();
            answer.get_or_insert_with(|| body.clone());
            state.by_hash.insert(hash, body);
        }
        state.submitted.push(accepted.real.hash);
        Ok(answer.expect("the resource of a submitted transaction"))
    });
    match outcome {
        Ok(body) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/hal+json; charset=utf-8")
            .header(header::CONTENT_DISPOSITION, "inline")
            .body(Body::from(body.to_string()))
            .expect("submit response"),
        Err(Rejected::Malformed) => custom_problem(
            400,
            "transaction_malformed",
            "Transaction Malformed",
            "Horizon could not decode the transaction envelope in this request. A transaction \
             should be an XDR TransactionEnvelope struct encoded using base64.  The envelope read \
             from this request is echoed in the `extras.envelope_xdr` field of this response for \
             your convenience.",
            Some(serde_json::json!({ "envelope_xdr": raw })),
        ),
        Err(Rejected::Failed { result_xdr, codes }) => custom_problem(
            400,
            "transaction_failed",
            "Transaction Failed",
            "The transaction failed when submitted to the stellar network. The \
             `extras.result_codes` field on this response contains further details.  \
             Descriptions of each code can be found at: \
             https://developers.stellar.org/api/errors/http-status-codes/horizon-specific/transaction-failed/",
            Some(FailedExtras {
                envelope_xdr: &raw,
                result_codes: &codes,
                result_xdr: &result_xdr,
            }),
        ),
    }
}

/// The `extras` of `transaction_failed`, in the order Go renders a map (sorted keys).
#[derive(serde::Serialize)]
struct FailedExtras<'a> {
    envelope_xdr: &'a str,
    result_codes: &'a submission::ResultCodes,
    result_xdr: &'a str,
}

fn respond(
    shared: &Shared,
    state: &mut State,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    query: Option<HashMap<String, String>>,
) -> Response {
    if let Some(response) = misbehave(state) {
        return response;
    }
    let Some(query) = query else {
        return problem(400, None);
    };
    if method != Method::GET {
        return problem(404, None);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (account, rest) = match segments.as_slice() {
        ["accounts", account, rest @ ..] if rest.len() <= 1 => (*account, rest),
        _ => return problem(404, None),
    };
    let Ok(account) = stellar_strkey::ed25519::PublicKey::from_string(account) else {
        return invalid_field(
            "account_id",
            "Account ID must start with `G` and contain 56 alphanum characters",
        );
    };
    let account = account.to_string().to_string();
    match rest {
        ["payments"] => payments(shared, state, headers, path, &account, &query),
        // `/accounts/{account}`: the fake keeps no account state.
        _ => problem(404, None),
    }
}

/// Go's `strconv.ParseBool`, with the empty string as false.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        _ => None,
    }
}

fn payments(
    shared: &Shared,
    state: &mut State,
    headers: &HeaderMap,
    path: &str,
    account: &str,
    query: &HashMap<String, String>,
) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or("");

    let mut cursor_text = param("cursor").to_string();
    if cursor_text == "now" {
        cursor_text = render::toid(state.ledger + 1, 0, 0).to_string();
    }
    if let Some(last_event_id) = headers.get("last-event-id").and_then(|v| v.to_str().ok())
        && !last_event_id.is_empty()
    {
        cursor_text = last_event_id.to_string();
    }
    let cursor: Option<i64> = if cursor_text.is_empty() {
        None
    } else {
        match cursor_text.parse::<i64>() {
            Ok(c) if c >= 0 => Some(c),
            _ => return invalid_field("cursor", "invalid value"),
        }
    };

    let descending = match param("order") {
        "" | "asc" => false,
        "desc" => true,
        _ => return invalid_field("order", "order: invalid value"),
    };

    let limit = match param("limit") {
        "" => DEFAULT_LIMIT,
        text => match text.parse::<i64>() {
            Ok(n) if n <= 0 => {
                return invalid_field("limit", "invalid limit: non-positive value provided");
            }
            Ok(n) if n > MAX_LIMIT as i64 => {
                return invalid_field(
                    "limit",
                    "invalid limit: value provided that is over limit max of 200",
                );
            }
            Ok(n) => n as usize,
            Err(_) => return invalid_field("limit", "unparseable value"),
        },
    };

    let join = match param("join") {
        "" => false,
        "transactions" => true,
        _ => return invalid_field("join", "Accepted values: transactions"),
    };

    let Some(include_failed) = parse_bool(param("include_failed")) else {
        return invalid_field("include_failed", "invalid value");
    };
    let include_failed_now = include_failed || state.send_failed_always;

    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/event-stream") {
        if descending {
            return invalid_field("order", "fake-horizon streams only in ascending order");
        }
        let limit = if state.keep_open { usize::MAX } else { limit };
        let drop_after = state.drop_after;
        let wanted = limit.min(drop_after.unwrap_or(usize::MAX));
        let backlog: VecDeque<(i64, Arc<str>)> = state
            .after(account, cursor.unwrap_or(-1))
            .iter()
            .map(|&i| &state.records[i])
            .filter(|record| record.successful || include_failed_now)
            .take(wanted)
            .map(|record| {
                (
                    record.token,
                    if join {
                        record.joined.clone()
                    } else {
                        record.plain.clone()
                    },
                )
            })
            .collect();

        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let subs = state.subs.entry(account.to_string()).or_default();
        subs.retain(|sub| !sub.tx.is_closed());
        subs.push(Sub {
            tx,
            join,
            include_failed,
            closed: closed.clone(),
        });

        let body = SseBody {
            hello_sent: false,
            backlog,
            rx,
            closed,
            sent: 0,
            limit,
            drop_after,
            finished: false,
            _guard: OpenGuard::new(shared.open_streams.clone()),
        };
        return Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONNECTION, "keep-alive")
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .body(Body::from_stream(body))
            .expect("stream response");
    }

    // A JSON page (HAL), as Horizon answers without `Accept: text/event-stream`.
    let selected: Vec<usize> = if descending {
        let before = state.before(account, cursor.unwrap_or(i64::MAX));
        before
            .iter()
            .rev()
            .copied()
            .filter(|&i| state.records[i].successful || include_failed_now)
            .take(limit)
            .collect()
    } else {
        state
            .after(account, cursor.unwrap_or(-1))
            .iter()
            .copied()
            .filter(|&i| state.records[i].successful || include_failed_now)
            .take(limit)
            .collect()
    };
    let (order, inverted) = if descending {
        ("desc", "asc")
    } else {
        ("asc", "desc")
    };
    let base = format!("{}{}", shared.url, path);
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "order" | "limit"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.push(("limit".into(), limit.to_string()));
    let link = |cursor: &str, order: &str| {
        let mut all = params.clone();
        all.push(("cursor".into(), cursor.to_string()));
        all.push(("order".into(), order.to_string()));
        all.sort();
        let encoded: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        serde_json::json!({ "href": format!("{base}?{}", encoded.join("&")) }).to_string()
    };
    let first = selected
        .first()
        .map(|&i| state.records[i].token.to_string());
    let last = selected.last().map(|&i| state.records[i].token.to_string());
    // `hal.Page`: `_links` {self, next, prev}, then `_embedded.records`.
    let links = format!(
        "{{\"self\":{},\"next\":{},\"prev\":{}}}",
        link(&cursor_text, order),
        link(last.as_deref().unwrap_or(&cursor_text), order),
        link(first.as_deref().unwrap_or(&cursor_text), inverted),
    );
    let mut body = format!("{{\"_links\":{links},\"_embedded\":{{\"records\":[");
    for (n, &i) in selected.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(if join {
            &state.records[i].joined
        } else {
            &state.records[i].plain
        });
    }
    body.push_str("]}}");
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/hal+json; charset=utf-8")
        .body(Body::from(body))
        .expect("page response")
}

/// Go's `url.QueryEscape`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Horizon's well-known problems (`support/render/problem`, `internal/render/problem`).
fn problem_parts(status: u16) -> (String, String, Option<&'static str>) {
    let known = |t: &str, title: &str, detail: Option<&'static str>| {
        (t.to_string(), title.to_string(), detail)
    };
    match status {
        400 => known(
            "bad_request",
            "Bad Request",
            Some("The request you sent was invalid in some way."),
        ),
        404 => known(
            "not_found",
            "Resource Missing",
            Some(
                "The resource at the url requested was not found.  This usually occurs for one of two \
                 reasons:  The url requested is not valid, or no data in our database could be found \
                 with the parameters provided.",
            ),
        ),
        406 => known(
            "not_acceptable",
            "An acceptable response content-type could not be provided for this request",
            None,
        ),
        410 => known(
            "before_history",
            "Data Requested Is Before Recorded History",
            Some(
                "This horizon instance is configured to only track a portion of the stellar network's \
                 latest history. This request is asking for results prior to the recorded history known \
                 to this horizon instance.",
            ),
        ),
        415 => known(
            "unsupported_media_type",
            "Unsupported Media Type",
            Some(
                "The request has an unsupported content type. Presently, the only supported \
                 content type is application/x-www-form-urlencoded.",
            ),
        ),
        429 => known(
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            Some(
                "The rate limit for the requesting IP address is over its alloted limit.  The allowed \
                 limit and requests left per time period are communicated to clients via the http \
                 response headers 'X-RateLimit-*' headers.",
            ),
        ),
        500 => known(
            "server_error",
            "Internal Server Error",
            Some(
                "An error occurred while processing this request.  This is usually due to a bug within \
                 the server software.  Trying this request again may succeed if the bug is transient. \
                 Otherwise, please contact the system administrator.",
            ),
        ),
        503 => known(
            "service_unavailable",
            "Service Unavailable",
            Some("The request cannot be serviced at this time."),
        ),
        504 => known(
            "timeout",
            "Timeout",
            Some(
                "Your request timed out before completing.  Please try your request again. If you are \
                 submitting a transaction make sure you are sending exactly the same transaction (with \
                 the same sequence number).",
            ),
        ),
        other => {
            let title = StatusCode::from_u16(other)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error")
                .to_string();
            (title.to_lowercase().replace([' ', '-'], "_"), title, None)
        }
    }
}

fn problem_response(status: u16) -> axum::http::response::Builder {
    Response::builder().status(status).header(
        header::CONTENT_TYPE,
        "application/problem+json; charset=utf-8",
    )
}

/// `problem.P`, in its field order.
#[derive(serde::Serialize)]
struct Problem<E: serde::Serialize> {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extras: Option<E>,
}

fn render_problem<E: serde::Serialize>(problem: &Problem<E>) -> String {
    // Horizon indents problems with two spaces.
    serde_json::to_string_pretty(problem).expect("problem JSON")
}

fn problem_body(status: u16, extras: Option<serde_json::Value>) -> String {
    let (kind, title, detail) = problem_parts(status);
    render_problem(&Problem {
        kind: format!("{PROBLEM_HOST}{kind}"),
        title,
        status,
        detail,
        extras,
    })
}

fn problem(status: u16, extras: Option<serde_json::Value>) -> Response {
    problem_response(status)
        .body(Body::from(problem_body(status, extras)))
        .expect("problem response")
}

/// A problem that is not one of the well-known ones of `problem_parts`.
fn custom_problem<E: serde::Serialize>(
    status: u16,
    kind: &str,
    title: &str,
    detail: &'static str,
    extras: Option<E>,
) -> Response {
    let body = render_problem(&Problem {
        kind: format!("{PROBLEM_HOST}{kind}"),
        title: title.to_string(),
        status,
        detail: Some(detail),
        extras,
    });
    problem_response(status)
        .body(Body::from(body))
        .expect("problem response")
}

fn invalid_field(name: &str, reason: &str) -> Response {
    problem(
        400,
        Some(serde_json::json!({ "invalid_field": name, "reason": reason })),
    )
}

fn injected_failure(status: u16, retry_after: Option<u64>) -> Response {
    let mut builder = problem_response(status);
    if status == 429 {
        // Horizon's rate limiter (github.com/stellar/throttled) sets these on a denial.
        builder = builder
            .header("X-RateLimit-Limit", "3600")
            .header("X-RateLimit-Remaining", "0");
        if let Some(secs) = retry_after {
            builder = builder
                .header("X-RateLimit-Reset", secs.to_string())
                .header(header::RETRY_AFTER, secs.to_string());
        }
    }
    builder
        .body(Body::from(problem_body(status, None)))
        .expect("failure response")
}

/// Counts a stream as open from the creation of its body to its drop.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(counter: Arc<AtomicUsize>) -> OpenGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        OpenGuard(counter)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The body of one SSE response: the opening message, the backlog, then live records, batched
/// into chunks of up to 64 KiB when several are ready.
struct SseBody {
    hello_sent: bool,
    backlog: VecDeque<(i64, Arc<str>)>,
    rx: mpsc::UnboundedReceiver<Msg>,
    closed: Arc<AtomicBool>,
    /// Records sent so far.
    sent: usize,
    /// Horizon's `limit`: after that many records, `byebye` and the end.
    limit: usize,
    /// `drop_streams_after`: after that many records, the end, without a message.
    drop_after: Option<usize>,
    finished: bool,
    _guard: OpenGuard,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished || this.closed.load(Ordering::SeqCst) {
            this.finished = true;
            return Poll::Ready(None);
        }
        if !this.hello_sent {
            this.hello_sent = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(HELLO))));
        }
        let mut chunk = String::new();
        loop {
            if this.drop_after.is_some_and(|n| this.sent >= n) {
                this.finished = true;
                break;
            }
            if this.sent >= this.limit {
                chunk.push_str(BYEBYE);
                this.finished = true;
                break;
            }
            if chunk.len() >= 64 * 1024 {
                break;
            }
            let next = match this.backlog.pop_front() {
                Some(record) => Some(record),
                None => match this.rx.poll_recv(cx) {
                    Poll::Ready(Some(Msg::Record(token, json))) => Some((token, json)),
                    Poll::Ready(Some(Msg::Wake)) => {
                        if this.closed.load(Ordering::SeqCst) {
                            this.finished = true;
                            return Poll::Ready(None);
                        }
                        continue;
                    }
                    Poll::Ready(None) => {
                        this.finished = true;
                        break;
                    }
                    Poll::Pending => None,
                },
            };
            let Some((token, json)) = next else { break };
            let _ = write!(chunk, "id: {token}\ndata: {json}\n\n");
            this.sent += 1;
        }
        if !chunk.is_empty() {
            Poll::Ready(Some(Ok(Bytes::from(chunk))))
        } else if this.finished {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
