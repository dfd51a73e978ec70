//! A raw SSE reader over reqwest, so that tests see the exact bytes on the wire.

#![allow(dead_code)]

use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::Value;
use stellar_strkey::ed25519::{MuxedAccount, PublicKey};

pub fn account(n: u8) -> String {
    PublicKey([n; 32]).to_string().to_string()
}

pub fn muxed(n: u8, id: u64) -> String {
    MuxedAccount {
        ed25519: [n; 32],
        id,
    }
    .to_string()
    .to_string()
}

/// One SSE message as it came over the wire.
#[derive(Debug, Clone)]
pub struct Event {
    pub raw: String,
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }
}

// reqwest's chunks are `bytes::Bytes`, which axum re-exports.
type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

pub struct Sse {
    pub status: u16,
    pub headers: HeaderMap,
    body: ByteStream,
    buf: String,
}

pub async fn open(url: &str) -> Sse {
    open_with(url, None).await
}

pub async fn open_with(url: &str, last_event_id: Option<&str>) -> Sse {
    let mut request = reqwest::Client::new()
        .get(url)
        .header("Accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("request");
    Sse {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: Box::pin(response.bytes_stream()),
        buf: String::new(),
    }
}

impl Sse {
    /// The next message; `None` at the end of the body. Panics after 5 s of silence.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs(5), self.next_inner())
            .await
            .expect("no SSE message within 5 s")
    }

    async fn next_inner(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw = self.buf[..end].to_string();
                self.buf.drain(..end + 2);
                let mut event = Event {
                    raw: raw.clone(),
                    id: None,
                    event: None,
                    retry: None,
                    data: String::new(),
                };
                for line in raw.lines() {
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    match field {
                        "id" => event.id = Some(value.to_string()),
                        "event" => event.event = Some(value.to_string()),
                        "retry" => event.retry = Some(value.to_string()),
                        "data" => event.data.push_str(value),
                        other => panic!("unexpected SSE field {other:?} in {raw:?}"),
                    }
                }
                return Some(event);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self
                    .buf
                    .push_str(std::str::from_utf8(&chunk).expect("UTF-8")),
                Some(Err(e)) => panic!("stream error: {e}"),
                None => {
                    assert!(
                        self.buf.is_empty(),
                        "body ended inside a message: {:?}",
                        self.buf
                    );
                    return None;
                }
            }
        }
    }

    /// The rest of the body as text (for a non-SSE answer such as a problem).
    pub async fn text(&mut self) -> String {
        let mut text = std::mem::take(&mut self.buf);
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), self.body.next())
            .await
            .expect("body")
        {
            text.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("UTF-8"));
        }
        text
    }

    /// The next message, which must be a record; returns its id and JSON.
    pub async fn record(&mut self) -> (String, Value) {
        let event = self
            .next()
            .await
            .expect("a record, not the end of the stream");
        assert!(event.event.is_none(), "not a record: {:?}", event.raw);
        let id = event.id.clone().expect("a record has an id");
        (id, event.json())
    }

    /// Asserts the opening message, byte for byte.
    pub async fn hello(&mut self) {
        let event = self.next().await.expect("the opening message");
        assert_eq!(event.raw, "retry: 1000\nevent: open\ndata: \"hello\"");
    }

    /// Asserts that nothing arrives (and the stream does not end) within `ms`.
    pub async fn quiet(&mut self, ms: u64) {
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(ms), self.next_inner()).await
        {
            panic!("expected silence, got {event:?}");
        }
    }

    /// Asserts the plain end of the body (no message before it).
    pub async fn ends(&mut self) {
        let event = self.next().await;
        assert!(
            event.is_none(),
            "expected the end of the stream, got {event:?}"
        );
    }
}

/// Polls `f` until it holds, for up to 3 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
