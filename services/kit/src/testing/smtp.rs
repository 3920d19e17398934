//! [`SmtpSink`]: a tiny SMTP server on loopback that records what it accepts and can be told
//! to fail.
//!
//! It speaks what a submission client needs: `EHLO`/`HELO` (advertising `8BITMIME`, `SMTPUTF8`,
//! `AUTH PLAIN LOGIN`), `AUTH PLAIN` (inline or after `334`), `AUTH LOGIN`, `MAIL FROM`,
//! `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP`, `QUIT`. `STARTTLS` is refused (`454`),
//! so only plain (`SmtpTls::None`) clients can use it. Unknown commands get `500`, commands out
//! of order `503`. Every connection is served concurrently.
//!
//! Faults, all settable while clients are connected:
//! - [`SmtpSink::fail_next`] / [`SmtpSink::fail_always`] / [`SmtpSink::fail_recipient`]: refuse
//!   `RCPT TO` with a given code (`451` transient, `550` permanent, …);
//! - [`SmtpSink::reject_auth`]: refuse `AUTH`;
//! - [`SmtpSink::drop_after_next_data`] / [`SmtpSink::stall_after_next_data`]: take a whole
//!   message, then hang up or go silent instead of answering `250`;
//! - [`SmtpSink::delay_replies`]: answer everything late (a slow server).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message the sink received in full.
#[derive(Debug, Clone)]
pub struct SmtpMessage {
    /// The `MAIL FROM` path, without angle brackets.
    pub mail_from: String,
    /// The accepted `RCPT TO` paths, without angle brackets.
    pub recipients: Vec<String>,
    /// The raw message as the client meant it: headers and body, CRLF line ends, dot-unstuffed,
    /// without the terminating `.` line (non-UTF-8 bytes decoded lossily; bodies are MIME-encoded
    /// ASCII in practice).
    pub data: String,
    /// The `Message-ID` header's value, angle brackets included; empty if there was none.
    pub message_id: String,
}

impl SmtpMessage {
    /// The first header called `name` (case-insensitive), unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.data, name)
    }
}

/// What the next `DATA` does after reading the whole message instead of answering `250`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterData {
    /// Close the connection without a reply: the client cannot know whether the message was
    /// taken (a crash between receiving and acknowledging).
    Drop,
    /// Keep the connection open and never reply, so the client's timeout fires.
    Stall,
}

#[derive(Default)]
struct SinkState {
    messages: Vec<SmtpMessage>,
    unacknowledged: Vec<SmtpMessage>,
    fail_next: Option<u16>,
    fail_always: Option<u16>,
    fail_recipients: HashMap<String, u16>,
    after_next_data: Option<AfterData>,
    reject_auth: Option<u16>,
    reply_delay: Duration,
    hold_final_reply: Duration,
    holding: usize,
    abandoned: usize,
    auths: Vec<(String, String)>,
    connections: usize,
    next_queue_id: u64,
}

/// A local SMTP server for tests. Stops accepting connections when dropped.
pub struct SmtpSink {
    port: u16,
    state: Arc<Mutex<SinkState>>,
    accept: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SmtpSink {
    /// Listen on `127.0.0.1` on a free port and serve until dropped.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let port = listener.local_addr().expect("the SMTP sink's address").port();
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    // A client that hangs up mid-session is not the sink's problem.
                    let _ = session(stream, state).await;
                });
            }
        });
        SmtpSink { port, state, accept }
    }

    /// The port to point an SMTP client at (host `127.0.0.1`, no TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message acknowledged with `250`, in order of arrival.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Messages received in full but never acknowledged (see [`SmtpSink::drop_after_next_data`]
    /// and [`SmtpSink::stall_after_next_data`]); a real server might have delivered them.
    pub fn unacknowledged(&self) -> Vec<SmtpMessage> {
        self.state.lock().unwrap().unacknowledged.clone()
    }

    /// Answer the next `RCPT TO` (on any connection) with `code` instead of `250`, once:
    /// `451` for a transient refusal, `550` for a permanent one, or any other code.
    pub fn fail_next(&self, code: u16) {
        self.state.lock().unwrap().fail_next = Some(code);
    }

    /// Answer every `RCPT TO` (any recipient, any connection) with `code` until cleared with
    /// [`SmtpSink::clear_failures`]: a server that keeps refusing.
    pub fn fail_always(&self, code: u16) {
        self.state.lock().unwrap().fail_always = Some(code);
    }

    /// Answer every `RCPT TO` for `address` (case-insensitive) with `code`, until cleared with
    /// [`SmtpSink::clear_failures`].
    pub fn fail_recipient(&self, address: &str, code: u16) {
        self.state.lock().unwrap().fail_recipients.insert(address.to_ascii_lowercase(), code);
    }

    /// Answer `AUTH` with `code` (e.g. `535`) instead of `235`. The reply echoes the decoded
    /// credentials, as a careless server might, so tests can check that errors scrub them.
    pub fn reject_auth(&self, code: u16) {
        self.state.lock().unwrap().reject_auth = Some(code);
    }

    /// Wait `delay` before writing every reply from now on, the greeting included, on every
    /// connection (a slow or overloaded server). `Duration::ZERO` restores prompt replies.
    pub fn delay_replies(&self, delay: Duration) {
        self.state.lock().unwrap().reply_delay = delay;
    }

    /// Hold the `250` that accepts a message for `hold`. A client that hangs up meanwhile has not
    /// handed the message over (RFC 5321: it is the server's only once the `250` is sent), so
    /// it is discarded and counted in [`SmtpSink::abandoned`]. `Duration::ZERO` restores prompt
    /// acceptance.
    pub fn hold_final_reply(&self, hold: Duration) {
        self.state.lock().unwrap().hold_final_reply = hold;
    }

    /// Messages received in full whose `250` is being held right now.
    pub fn unacknowledged_in_flight(&self) -> usize {
        self.state.lock().unwrap().holding
    }

    /// Messages received in full whose client hung up before they were accepted.
    pub fn abandoned(&self) -> usize {
        self.state.lock().unwrap().abandoned
    }

    /// Forget every configured failure (`fail_next`, `fail_always`, `fail_recipient`,
    /// `reject_auth`, the `*_after_next_data` faults); reply delays stay.
    pub fn clear_failures(&self) {
        let mut state = self.state.lock().unwrap();
        state.fail_next = None;
        state.fail_always = None;
        state.fail_recipients.clear();
        state.reject_auth = None;
        state.after_next_data = None;
    }

    /// On the next `DATA`, read the whole message, record it in
    /// [`SmtpSink::unacknowledged`], then close the connection without answering: the
    /// client sees the connection drop at the worst moment (crash after receipt, before `250`).
    pub fn drop_after_next_data(&self) {
        self.state.lock().unwrap().after_next_data = Some(AfterData::Drop);
    }

    /// On the next `DATA`, read the whole message, record it in
    /// [`SmtpSink::unacknowledged`], then never answer (the connection stays open), so the
    /// client's own timeout decides.
    pub fn stall_after_next_data(&self) {
        self.state.lock().unwrap().after_next_data = Some(AfterData::Stall);
    }

    /// `(username, password)` of every `AUTH` attempt, accepted or not.
    pub fn auths(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().auths.clone()
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    recipients: Vec<String>,
}

/// Write one reply (several lines if `text` has CRLFs), after the configured delay.
async fn reply(w: &mut OwnedWriteHalf, state: &Mutex<SinkState>, text: &str) -> std::io::Result<()> {
    let delay = state.lock().unwrap().reply_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await
}

/// A reply line for a forced failure code.
fn failure_reply(code: u16) -> String {
    let class = code / 100;
    format!("{code} {class}.0.0 Forced failure from the test sink")
}

/// The path inside `<…>` after `FROM:`/`TO:`, without parameters.
fn path_of(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(open), Some(close)) if open < close => argument[open + 1..close].to_owned(),
        _ => argument.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

async fn read_line(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

fn decode_b64(text: &str) -> String {
    STANDARD.decode(text.trim()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

async fn session(stream: TcpStream, state: Arc<Mutex<SinkState>>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    reply(&mut w, &state, "220 cobro-sink ESMTP ready").await?;
    let mut tx = Transaction::default();
    while let Some(line) = read_line(&mut r).await? {
        let line = String::from_utf8_lossy(&line).into_owned();
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        match verb.as_str() {
            "EHLO" => {
                let capabilities =
                    "250-cobro-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760";
                reply(&mut w, &state, capabilities).await?;
            }
            "HELO" => reply(&mut w, &state, "250 cobro-sink").await?,
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let (user, pass) = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
                    Some("PLAIN") => {
                        let encoded = match words.get(2) {
                            Some(inline) => (*inline).to_owned(),
                            None => {
                                reply(&mut w, &state, "334 ").await?;
                                String::from_utf8_lossy(&read_line(&mut r).await?.unwrap_or_default()).into_owned()
                            }
                        };
                        let decoded = decode_b64(&encoded);
                        let mut parts = decoded.split('\0').skip(1);
                        (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned())
                    }
                    Some("LOGIN") => {
                        reply(&mut w, &state, "334 VXNlcm5hbWU6").await?;
                        let user = decode_b64(&String::from_utf8_lossy(&read_line(&mut r).await?.unwrap_or_default()));
                        reply(&mut w, &state, "334 UGFzc3dvcmQ6").await?;
                        let pass = decode_b64(&String::from_utf8_lossy(&read_line(&mut r).await?.unwrap_or_default()));
                        (user, pass)
                    }
                    _ => {
                        reply(&mut w, &state, "504 5.5.4 Unrecognized authentication type").await?;
                        continue;
                    }
                };
                let rejected = {
                    let mut state = state.lock().unwrap();
                    state.auths.push((user.clone(), pass.clone()));
                    state.reject_auth
                };
                match rejected {
                    Some(code) => {
                        reply(&mut w, &state, &format!("{code} 5.7.8 Authentication failed for {user}:{pass}")).await?
                    }
                    None => reply(&mut w, &state, "235 2.7.0 Authentication successful").await?,
                }
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                tx = Transaction { mail_from: Some(path_of(&line[10..])), recipients: Vec::new() };
                reply(&mut w, &state, "250 2.1.0 Ok").await?;
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                if tx.mail_from.is_none() {
                    reply(&mut w, &state, "503 5.5.1 MAIL first").await?;
                    continue;
                }
                let recipient = path_of(&line[8..]);
                let forced = {
                    let mut state = state.lock().unwrap();
                    state
                        .fail_next
                        .take()
                        .or(state.fail_always)
                        .or_else(|| state.fail_recipients.get(&recipient.to_ascii_lowercase()).copied())
                };
                match forced {
                    Some(code) => reply(&mut w, &state, &failure_reply(code)).await?,
                    None => {
                        tx.recipients.push(recipient);
                        reply(&mut w, &state, "250 2.1.5 Ok").await?;
                    }
                }
            }
            "DATA" => {
                if tx.mail_from.is_none() || tx.recipients.is_empty() {
                    reply(&mut w, &state, "503 5.5.1 No valid recipients").await?;
                    continue;
                }
                reply(&mut w, &state, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = Vec::new();
                loop {
                    let Some(line) = read_line(&mut r).await? else {
                        return Ok(()); // the client went away mid-message: nothing is recorded
                    };
                    if line == b"." {
                        break;
                    }
                    let line = line.strip_prefix(b".").unwrap_or(&line);
                    data.extend_from_slice(line);
                    data.extend_from_slice(b"\r\n");
                }
                let hold = state.lock().unwrap().hold_final_reply;
                if !hold.is_zero() {
                    // The client says nothing until it hears back, so anything read here is
                    // the connection closing.
                    state.lock().unwrap().holding += 1;
                    let heard = tokio::time::timeout(hold, read_line(&mut r)).await;
                    let mut held = state.lock().unwrap();
                    held.holding -= 1;
                    if let Ok(Ok(None) | Err(_)) = heard {
                        held.abandoned += 1;
                        return Ok(());
                    }
                }
                let data = String::from_utf8_lossy(&data).into_owned();
                let message = SmtpMessage {
                    mail_from: tx.mail_from.take().unwrap_or_default(),
                    recipients: std::mem::take(&mut tx.recipients),
                    message_id: header_value(&data, "Message-ID").unwrap_or_default(),
                    data,
                };
                let (after, queue_id) = {
                    let mut state = state.lock().unwrap();
                    let after = state.after_next_data.take();
                    if after.is_some() {
                        state.unacknowledged.push(message);
                    } else {
                        state.messages.push(message);
                    }
                    state.next_queue_id += 1;
                    (after, state.next_queue_id)
                };
                match after {
                    Some(AfterData::Drop) => return Ok(()),
                    Some(AfterData::Stall) => {
                        // Hold the connection open until the client gives up and closes it.
                        while read_line(&mut r).await?.is_some() {}
                        return Ok(());
                    }
                    None => reply(&mut w, &state, &format!("250 2.0.0 Ok: queued as Q{queue_id}")).await?,
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut w, &state, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut w, &state, "250 2.0.0 Ok").await?,
            "QUIT" => {
                reply(&mut w, &state, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            "STARTTLS" => reply(&mut w, &state, "454 4.7.0 TLS not available").await?,
            "MAIL" | "RCPT" => reply(&mut w, &state, "501 5.5.4 Syntax error").await?,
            _ => reply(&mut w, &state, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

/// The first header called `name` in a message's header section, unfolded and trimmed.
pub fn header_value(message: &str, name: &str) -> Option<String> {
    let headers = message.split("\r\n\r\n").next().unwrap_or("");
    let mut found: Option<String> = None;
    for line in headers.split("\r\n") {
        if let Some(value) = found.as_mut() {
            if line.starts_with([' ', '\t']) {
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_owned());
        }
    }
    found
}
