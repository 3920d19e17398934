//! [`HttpStub`]: an axum server on loopback that records every request and answers through a
//! responder, with Twilio-like, WhatsApp-Cloud-like and webhook-receiver presets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cobro_notifications::channels::{SIGNATURE_TOLERANCE, verify_webhook_signature};
use serde_json::{Value, json};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k), form_decode(v))
            })
            .collect()
    }

    /// The first form field called `key`.
    pub fn field(&self, key: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the stub answers: a status, a body and extra headers.
#[derive(Debug, Clone)]
pub struct StubReply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl StubReply {
    pub fn json(status: u16, body: &Value) -> StubReply {
        StubReply {
            status,
            body: body.to_string().into_bytes(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        }
    }

    pub fn empty(status: u16) -> StubReply {
        StubReply { status, body: Vec::new(), headers: Vec::new() }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap();
        let mut response = (status, self.body).into_response();
        for (name, value) in self.headers {
            response
                .headers_mut()
                .insert(HeaderName::try_from(name.as_str()).unwrap(), HeaderValue::try_from(value.as_str()).unwrap());
        }
        response
    }
}

/// Decides the answer to a request; gets the request and its 1-based number.
pub type Responder = Arc<dyn Fn(&Recorded, usize) -> StubReply + Send + Sync>;

struct StubState {
    requests: Vec<Recorded>,
    queued: VecDeque<StubReply>,
    hang: bool,
    responder: Responder,
}

/// A recording HTTP server on `127.0.0.1`. Answers, in order of precedence: never (after
/// [`HttpStub::hang`]), the next reply queued with [`HttpStub::respond_next`], or the
/// responder's answer. Runs until the test's runtime ends.
#[derive(Clone)]
pub struct HttpStub {
    state: Arc<Mutex<StubState>>,
    url: String,
}

impl HttpStub {
    /// A stub answering every request with `responder`.
    pub async fn start(responder: impl Fn(&Recorded, usize) -> StubReply + Send + Sync + 'static) -> HttpStub {
        let state = Arc::new(Mutex::new(StubState {
            requests: Vec::new(),
            queued: VecDeque::new(),
            hang: false,
            responder: Arc::new(responder),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stub = HttpStub { state, url };
        let app = Router::new().fallback(handle).with_state(stub.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        stub
    }

    /// Twilio's Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json` answers `201` with
    /// a message resource (`sid` = `SM` + 32 hex digits numbered by request); any other path
    /// answers Twilio's `404` error.
    pub async fn twilio() -> HttpStub {
        HttpStub::start(|request, n| {
            let parts: Vec<&str> = request.path.split('/').collect();
            let is_messages = request.method == Method::POST
                && matches!(parts.as_slice(), ["", "2010-04-01", "Accounts", _, "Messages.json"]);
            if !is_messages {
                return twilio_error(404, 20404, "The requested resource was not found");
            }
            StubReply::json(
                201,
                &json!({
                    "sid": format!("SM{n:032x}"),
                    "status": "queued",
                    "to": request.field("To"),
                    "from": request.field("From"),
                    "messaging_service_sid": request.field("MessagingServiceSid"),
                    "body": request.field("Body"),
                }),
            )
        })
        .await
    }

    /// Meta's Cloud API: `POST /v21.0/{phone_number_id}/messages` answers `200` with
    /// `{messaging_product, contacts: [{input, wa_id}], messages: [{id}]}`; any other path
    /// answers a Graph API error.
    pub async fn whatsapp() -> HttpStub {
        HttpStub::start(|request, n| {
            let parts: Vec<&str> = request.path.split('/').collect();
            let is_messages =
                request.method == Method::POST && matches!(parts.as_slice(), ["", "v21.0", _, "messages"]);
            if !is_messages {
                return graph_error(400, 100, "OAuthException", "Unsupported post request");
            }
            let to = request.json()["to"].as_str().unwrap_or("").to_owned();
            StubReply::json(
                200,
                &json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{ "input": to, "wa_id": to }],
                    "messages": [{ "id": format!("wamid.STUB{n:08}") }],
                }),
            )
        })
        .await
    }

    /// A tenant's endpoint that checks `Cobro-Signature` with `secret` the way tenants are told
    /// to: `204` when it verifies, `401` when it does not.
    pub async fn webhook_receiver(secret: &str) -> HttpStub {
        let secret = secret.as_bytes().to_vec();
        HttpStub::start(move |request, _| {
            let header = request.header("cobro-signature").unwrap_or("");
            if verify_webhook_signature(&secret, header, &request.body, Utc::now(), SIGNATURE_TOLERANCE) {
                StubReply::empty(204)
            } else {
                StubReply::json(401, &json!({ "error": "bad signature" }))
            }
        })
        .await
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().last().cloned().expect("the stub received no request")
    }

    /// Answer the next request with `reply` instead of the responder (queued, one each).
    pub fn respond_next(&self, reply: StubReply) {
        self.state.lock().unwrap().queued.push_back(reply);
    }

    /// Record requests but never answer them.
    pub fn hang(&self) {
        self.state.lock().unwrap().hang = true;
    }
}

/// Twilio's error shape.
pub fn twilio_error(status: u16, code: u32, message: &str) -> StubReply {
    StubReply::json(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// The Graph API's error shape.
pub fn graph_error(status: u16, code: u32, kind: &str, message: &str) -> StubReply {
    StubReply::json(
        status,
        &json!({
            "error": { "message": message, "type": kind, "code": code, "fbtrace_id": "Astub" },
        }),
    )
}

async fn handle(State(stub): State<HttpStub>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request =
        Recorded { method, path: uri.path().to_owned(), query: uri.query().map(str::to_owned), headers, body };
    let (hang, reply) = {
        let mut state = stub.state.lock().unwrap();
        state.requests.push(request.clone());
        let n = state.requests.len();
        let reply = match state.queued.pop_front() {
            Some(reply) => reply,
            None => (state.responder)(&request, n),
        };
        (state.hang, reply)
    };
    if hang {
        return std::future::pending::<Response>().await;
    }
    reply.into_response()
}

/// A loopback port nothing listens on (bound, then released), for "connection refused".
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
