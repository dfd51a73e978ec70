//! A fake of the anchor's business server on a real loopback port, for the tests of the
//! forwarders (`[kyc] business_url`, `[sep31] business_url`). It records every request it
//! gets, so a test can tell what was forwarded and what never left capstan. A test can make
//! it answer with a canned response (to every request, or to those of one path), wait
//! before answering, or stop listening. Every other request goes to the test's own handler,
//! with the test's own state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::stoppable::StoppableServer;

/// One request as the business server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub raw_body: String,
    /// The JSON body; a body that is not JSON is kept as a JSON string.
    pub body: Option<Value>,
    pub authorization: Option<String>,
    pub signature: Option<String>,
}

/// What the test's handler answers, from its state and the request.
pub type Handler<S> = fn(&mut S, &Recorded) -> Response;

/// A canned answer: status, body, content type.
type Canned = (u16, String, String);

struct Shared<S> {
    requests: Vec<Recorded>,
    /// Every request gets this instead, when set.
    canned: Option<Canned>,
    /// By path: every request to it gets this instead.
    canned_paths: HashMap<String, Canned>,
    delay: Option<Duration>,
    state: S,
}

pub struct FakeBusiness<S> {
    server: StoppableServer,
    pub url: String,
    shared: Arc<Mutex<Shared<S>>>,
}

impl<S: Send + 'static> FakeBusiness<S> {
    pub async fn start(state: S, handler: Handler<S>) -> FakeBusiness<S> {
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            canned: None,
            canned_paths: HashMap::new(),
            delay: None,
            state,
        }));
        let answering = shared.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                answer(answering.clone(), handler, method, uri, headers, body)
            },
        );
        let server = StoppableServer::serve(router).await;
        FakeBusiness {
            url: server.url.clone(),
            server,
            shared,
        }
    }
}

impl<S> FakeBusiness<S> {
    /// Stops listening and closes every connection.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    fn shared(&self) -> MutexGuard<'_, Shared<S>> {
        self.shared.lock().unwrap()
    }

    /// The test's state, as the handler left it.
    pub fn state(&self) -> MappedState<'_, S> {
        MappedState(self.shared())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared().requests.clone()
    }

    pub fn requests_with(&self, method: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The last request of this method.
    pub fn last_with(&self, method: &str) -> Recorded {
        self.requests_with(method)
            .pop()
            .unwrap_or_else(|| panic!("the business server got no {method} request"))
    }

    /// The last request to this path.
    pub fn last_to(&self, path: &str) -> Recorded {
        self.requests_to(path)
            .pop()
            .unwrap_or_else(|| panic!("the business server got no request to {path}"))
    }

    /// Every request gets this answer until [`FakeBusiness::answer_normally`].
    pub fn answer_with(&self, status: u16, body: &str, content_type: &str) {
        self.shared().canned = Some((status, body.to_owned(), content_type.to_owned()));
    }

    /// Every request to `path` gets this answer until [`FakeBusiness::answer_normally`].
    pub fn answer_to(&self, path: &str, status: u16, body: &str, content_type: &str) {
        self.shared().canned_paths.insert(
            path.to_owned(),
            (status, body.to_owned(), content_type.to_owned()),
        );
    }

    pub fn answer_normally(&self) {
        let mut shared = self.shared();
        shared.canned = None;
        shared.canned_paths.clear();
    }

    /// Every answer waits this long first.
    pub fn delay(&self, delay: Option<Duration>) {
        self.shared().delay = delay;
    }
}

/// The test's state inside the fake's lock.
pub struct MappedState<'a, S>(MutexGuard<'a, Shared<S>>);

impl<S> std::ops::Deref for MappedState<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.0.state
    }
}

impl<S> std::ops::DerefMut for MappedState<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.0.state
    }
}

async fn answer<S>(
    shared: Arc<Mutex<Shared<S>>>,
    handler: Handler<S>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).expect("a query string");
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        body: (!body.is_empty()).then(|| {
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(raw_body.clone()))
        }),
        raw_body,
        authorization: header(AUTHORIZATION.as_str()),
        signature: header("signature"),
    };
    let (delay, canned) = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(recorded.clone());
        let canned = shared
            .canned
            .clone()
            .or_else(|| shared.canned_paths.get(&recorded.path).cloned());
        (shared.delay, canned)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, body, content_type)) = canned {
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            [(CONTENT_TYPE, content_type)],
            body,
        )
            .into_response();
        // A redirect the anchor must not follow.
        if (300..400).contains(&status) {
            response
                .headers_mut()
                .insert(LOCATION, "/elsewhere".parse().unwrap());
        }
        return response;
    }
    let mut shared = shared.lock().unwrap();
    handler(&mut shared.state, &recorded)
}
