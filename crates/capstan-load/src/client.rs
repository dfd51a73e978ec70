//! One HTTP/1.1 keep-alive connection to the anchor, reopened after a transport error.
//! Each worker of the runner owns one, so the concurrency is exactly the number of
//! connections.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// An answer: the status and the whole body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.text()))
    }

    /// The body as text, cut to a length that fits an error line.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut cut: String = text.chars().take(160).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    }
}

pub struct Conn {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr`, opened on first use. `host` is sent as the `Host` header.
    pub fn new(addr: SocketAddr, host: &str) -> Conn {
        Conn {
            addr,
            host: host.to_owned(),
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                // Its end is seen by the sender as a closed connection.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("just opened");
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        Ok(sender)
    }

    /// Sends one request; `Err` is a transport error (the connection is then dropped and
    /// the next request opens a new one). Any status is an `Ok`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, &self.host);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(value) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(value.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let result = async {
            let sender = self.sender().await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>(Reply { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result.map_err(|e| format!("{method} {}: transport error: {e}", strip_query(path)))
    }

    pub async fn get(&mut self, path: &str, token: Option<&str>) -> Result<Reply, String> {
        self.send(Method::GET, path, token, None).await
    }

    /// Sends a request and insists on a 2xx answer; anything else is an error line naming
    /// the request and the answer.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<&Value>,
    ) -> Result<Reply, String> {
        let reply = self.send(method.clone(), path, token, json).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(format!(
                "{method} {}: {} {}",
                strip_query(path),
                reply.status,
                reply.text()
            ))
        }
    }
}

/// A path without its query, for error lines that group well (the query holds accounts).
fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}
