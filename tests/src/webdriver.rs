//! A real browser for the tests: headless Chromium driven by chromedriver over the W3C
//! WebDriver protocol (plain JSON over HTTP, so no client library is needed). Screenshots go
//! to `artifacts/screenshots/<test>/` at the repository root, at desktop width and at 360 px.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::web::Web;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (360, 780);

pub struct Browser {
    driver: Child,
    http: Web,
    session: String,
    shots: PathBuf,
    shot_count: u32,
}

fn binary(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Start chromedriver and a headless Chromium; screenshots go under `name`.
    pub async fn start(name: &str) -> Browser {
        let port = cobro_kit::testing::free_port();
        let driver = Command::new(binary("COBRO_CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, installed by `infra/dev deps`)");
        let http = Web::new(&format!("http://127.0.0.1:{port}"));
        let mut ready = false;
        for _ in 0..100 {
            if http.try_get("/status").await.is_some_and(|r| r.body.contains("\"ready\":true")) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary("COBRO_CHROMIUM", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-extensions", "--no-first-run",
                         "--disable-sync", "--disable-default-apps", "--hide-scrollbars",
                         "--lang=es-MX", "--window-size=1280,900"]
            }
        }}});
        let created = send(&http, "POST", "/session", Some(capabilities)).await;
        let session = created["sessionId"].as_str().expect("a WebDriver session id").to_owned();
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/screenshots").join(name);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("the screenshots directory");
        Browser { driver, http, session, shots, shot_count: 0 }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        send(&self.http, method, &format!("/session/{}{path}", self.session), body).await
    }

    pub async fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Wait up to 10 s until the browser has left pages whose address contains `part` (a form
    /// posted, its redirect followed); the address it reached.
    pub async fn leave(&self, part: &str) -> String {
        for _ in 0..100 {
            let url = self.url().await;
            if !url.contains(part) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still on {part}: {}", self.source().await);
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        self.call("GET", "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The element matching a CSS selector, waiting up to 10 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            let found = send_raw(
                &self.http,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
            if let Some(id) = found.get("value").and_then(|v| v.get(ELEMENT)).and_then(Value::as_str) {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element `{css}` on {}:\n{}", self.url().await, self.source().await);
    }

    pub async fn has(&self, css: &str) -> bool {
        let found = send_raw(
            &self.http,
            "POST",
            &format!("/session/{}/element", self.session),
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await;
        found.get("value").and_then(|v| v.get(ELEMENT)).is_some()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text }))).await;
    }

    /// Set a field's value as its picker would (typing into `<input type="date">` goes through
    /// the browser's locale-specific segments, which differ per machine).
    pub async fn pick(&self, css: &str, value: &str) {
        self.find(css).await;
        let script = format!(
            "document.querySelector({}).value = {}; return true;",
            serde_json::to_string(css).unwrap(),
            serde_json::to_string(value).unwrap()
        );
        self.script(&script).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Wait up to `seconds` for the page (reloaded each second) to contain `needle`.
    pub async fn reload_until(&self, needle: &str, seconds: u32) -> bool {
        for _ in 0..seconds {
            if self.source().await.contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.call("POST", "/refresh", Some(json!({}))).await;
        }
        self.source().await.contains(needle)
    }

    pub async fn script(&self, source: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": source, "args": [] }))).await
    }

    async fn resize(&self, (width, height): (u32, u32)) {
        self.call("POST", "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Basic accessibility of the current page: a language, a title, one `h1`, every visible
    /// form control with a label (a `<label for>`, a wrapping label or an `aria-label`),
    /// every image with alternative text, every button and link with a name.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let script = r#"
const problems = [];
if (!document.documentElement.lang) problems.push('html without lang');
if (!document.title.trim()) problems.push('no title');
if (document.querySelectorAll('h1').length !== 1) problems.push(document.querySelectorAll('h1').length + ' h1 elements');
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))
    || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
  if (!labelled) problems.push('unlabelled ' + el.tagName.toLowerCase() + ' ' + (el.name || el.id));
}
for (const img of document.querySelectorAll('img')) {
  if (!img.hasAttribute('alt')) problems.push('image without alt: ' + img.src.slice(0, 60));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  const name = (el.textContent || '').trim() || el.getAttribute('aria-label') || el.getAttribute('title');
  if (!name) problems.push('unnamed ' + el.tagName.toLowerCase());
}
return problems;"#;
        let found = self.script(script).await;
        found.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Screenshots of the current page at desktop width and at 360 px, saved as
    /// `NN-<step>-desktop.png` and `NN-<step>-360.png`. Checks on the way the page's basic
    /// accessibility and that the phone layout needs no sideways scrolling, and returns to
    /// desktop width.
    pub async fn snap(&mut self, step: &str) {
        let problems = self.accessibility_problems().await;
        assert!(problems.is_empty(), "{step}: accessibility problems on {}: {problems:?}", self.url().await);
        self.shot_count += 1;
        for (label, size) in [("desktop", DESKTOP), ("360", PHONE)] {
            self.resize(size).await;
            let png = self.call("GET", "/screenshot", None).await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().expect("a base64 screenshot"))
                .expect("a PNG");
            let path = self.shots.join(format!("{:02}-{step}-{label}.png", self.shot_count));
            std::fs::write(&path, &bytes).expect("write a screenshot");
            if label == "360" {
                let viewport = self.script("return window.innerWidth").await;
                let overflow = self.script("return document.documentElement.scrollWidth - window.innerWidth").await;
                assert!(
                    overflow.as_i64().unwrap_or(1) <= 0,
                    "{step}: at {viewport} px the page scrolls sideways by {overflow} px ({})",
                    path.display()
                );
            }
        }
        self.resize(DESKTOP).await;
    }

    pub async fn close(mut self) {
        send_raw(&self.http, "DELETE", &format!("/session/{}", self.session), None).await;
        let _ = self.driver.kill().await;
    }
}

/// The width of a PNG, from its header.
pub fn png_width(bytes: &[u8]) -> Option<u32> {
    let width = bytes.get(16..20)?;
    Some(u32::from_be_bytes([width[0], width[1], width[2], width[3]]))
}

async fn send_raw(http: &Web, method: &str, path: &str, body: Option<Value>) -> Value {
    let headers = [("content-type", "application/json")];
    let reply = http.request(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await;
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {}", reply.body))
}

async fn send(http: &Web, method: &str, path: &str, body: Option<Value>) -> Value {
    let answer = send_raw(http, method, path, body).await;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        panic!(
            "WebDriver {method} {path}: {error}: {}",
            value.get("message").and_then(Value::as_str).unwrap_or_default()
        );
    }
    value
}
