//! A fault proxy for the wire between a bountyline process and PostgreSQL: faults where the
//! network has them, not in the processes.
//!
//! [`Proxy`] listens on loopback and forwards every connection to the real server. It reads
//! what the client sends as PostgreSQL frontend messages (the startup message's
//! `application_name`, each statement's text from Parse or Query, which prepared statement a
//! Bind runs), so that a [`Rule`] can pick one statement on one kind of connection — the group
//! commit's `append_group` on the committer's connection — and cut the wire at that point:
//!
//! - [`Cut::AfterAnswer`]: the statement reaches the server and runs to its end (Postgres
//!   answers an implicit transaction's statement after its commit), then the answer is dropped
//!   and both sides are closed. The client never learns that it committed.
//! - [`Cut::BeforeSending`]: the statement never reaches the server; both sides are closed.
//!   To the client this looks exactly like the cut above.
//! - [`Cut::Stall`]: the statement reaches the server, and its answer is held back for good
//!   while both connections stay open: a half-open connection, a silent partition.
//!
//! [`Proxy::opaque`] forwards any other protocol (NATS) byte for byte: no rule fires there.
//!
//! Besides rules: added latency on every chunk both ways ([`Proxy::set_latency`]), cutting
//! every open connection at once ([`Proxy::cut_all`]), and refusing new ones
//! ([`Proxy::refuse`]). Only loopback addresses are served; it forwards to the one upstream it
//! was given.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where a [`Rule`] cuts the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Let the statement through and drop its answer, then close both sides.
    AfterAnswer,
    /// Drop the statement and close both sides.
    BeforeSending,
    /// Let the statement through and hold its answer back, keeping both sides open.
    Stall,
}

/// One armed fault: on connections whose startup named `application` (any when `None`), the
/// next `times` statements whose text contains `statement` are cut as `cut` says.
#[derive(Debug, Clone)]
pub struct Rule {
    pub application: Option<String>,
    pub statement: String,
    pub cut: Cut,
    pub times: usize,
}

impl Rule {
    /// Cut once after `statement`'s answer, on connections named `application`.
    pub fn after_answer(application: &str, statement: &str) -> Self {
        Self::once(application, statement, Cut::AfterAnswer)
    }

    /// Cut once before `statement` is sent, on connections named `application`.
    pub fn before_sending(application: &str, statement: &str) -> Self {
        Self::once(application, statement, Cut::BeforeSending)
    }

    /// Stall once after `statement` is sent, on connections named `application`.
    pub fn stall(application: &str, statement: &str) -> Self {
        Self::once(application, statement, Cut::Stall)
    }

    fn once(application: &str, statement: &str, cut: Cut) -> Self {
        Self {
            application: Some(application.to_owned()),
            statement: statement.to_owned(),
            cut,
            times: 1,
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    /// Read the client's bytes as PostgreSQL messages (rules can fire), or forward them as
    /// they come.
    postgres: bool,
    rule: Mutex<Option<Rule>>,
    fired: AtomicUsize,
    latency_ms: AtomicU64,
    refusing: AtomicBool,
    /// Bumped to close every open connection.
    cut_all: watch::Sender<u64>,
}

impl Shared {
    /// Whether the armed rule matches this statement on this connection; counts it down.
    fn fire(&self, application: Option<&str>, statement: &str) -> Option<Cut> {
        let mut armed = self.rule.lock().unwrap_or_else(|e| e.into_inner());
        let rule = armed.as_mut()?;
        let named = rule
            .application
            .as_deref()
            .is_none_or(|a| Some(a) == application);
        if !named || !statement.contains(&rule.statement) {
            return None;
        }
        let cut = rule.cut;
        rule.times -= 1;
        if rule.times == 0 {
            *armed = None;
        }
        self.fired.fetch_add(1, Ordering::SeqCst);
        Some(cut)
    }

    async fn delay(&self) {
        let ms = self.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// A running proxy; it stops (and closes its connections) when dropped.
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`, which must be a loopback
    /// address: this tool sends nothing anywhere else.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::listen(upstream, true).await
    }

    /// A proxy for any other protocol: bytes are forwarded as they come, and no [`Rule`] ever
    /// fires; latency, [`Proxy::cut_all`] and [`Proxy::refuse`] work as for Postgres.
    pub async fn opaque(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::listen(upstream, false).await
    }

    async fn listen(upstream: SocketAddr, postgres: bool) -> std::io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the fault proxy forwards to loopback addresses only",
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            postgres,
            rule: Mutex::new(None),
            fired: AtomicUsize::new(0),
            latency_ms: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            cut_all: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self {
            address,
            shared,
            accept,
        })
    }

    /// Where clients connect instead of the server.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Arms `rule`, replacing any rule still armed.
    pub fn arm(&self, rule: Rule) {
        *self.shared.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some(rule);
    }

    /// Disarms the rule, if one is still armed.
    pub fn disarm(&self) {
        *self.shared.rule.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How many times rules have fired.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Delays every chunk, both ways, by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.shared.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Closes every open connection, both sides.
    pub fn cut_all(&self) {
        self.shared
            .cut_all
            .send_modify(|generation| *generation += 1);
    }

    /// Refuses new connections (accepts and closes them at once) while `on`.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        if shared.refusing.load(Ordering::SeqCst) {
            continue;
        }
        tokio::spawn(relay(client, shared.clone()));
    }
}

/// What one connection's client→server side asks of the server→client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    Forward,
    /// Drop the next answer and close both sides.
    DropAndCut,
    /// Hold every answer back from now on.
    HoldBack,
}

async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (answers, answers_seen) = watch::channel(Answers::Forward);
    let (closed, _) = watch::channel(false);
    let mut cut_all = shared.cut_all.subscribe();
    let requests = requests(
        client_read,
        server_write,
        shared.clone(),
        answers,
        closed.clone(),
    );
    let replies = replies(
        server_read,
        client_write,
        shared.clone(),
        answers_seen,
        closed.clone(),
    );
    let mut ended = closed.subscribe();
    tokio::select! {
        _ = async { tokio::join!(requests, replies) } => {}
        _ = cut_all.changed() => {}
        _ = ended.wait_for(|closed| *closed) => {}
    }
}

/// Client → server: parsed message by message, forwarded unless a rule cuts first.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: Arc<Shared>,
    answers: watch::Sender<Answers>,
    closed: watch::Sender<bool>,
) {
    let mut frontend = Frontend::default();
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        let (complete, statements) = match shared.postgres {
            true => frontend.take(&buffer),
            false => (buffer.len(), Vec::new()),
        };
        let mut cut = None;
        for statement in &statements {
            if let Some(c) = shared.fire(frontend.application.as_deref(), statement) {
                cut = Some(c);
                break;
            }
        }
        match cut {
            Some(Cut::BeforeSending) => break,
            Some(Cut::AfterAnswer) => {
                let _ = answers.send(Answers::DropAndCut);
            }
            Some(Cut::Stall) => {
                let _ = answers.send(Answers::HoldBack);
            }
            None => {}
        }
        shared.delay().await;
        if to.write_all(&buffer[..complete]).await.is_err() {
            break;
        }
        buffer.drain(..complete);
    }
    let _ = closed.send(true);
}

/// Server → client: forwarded chunk by chunk, unless the other side asked otherwise.
async fn replies(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: Arc<Shared>,
    answers: watch::Receiver<Answers>,
    closed: watch::Sender<bool>,
) {
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match *answers.borrow() {
            Answers::Forward => {}
            Answers::DropAndCut => break,
            Answers::HoldBack => continue,
        }
        shared.delay().await;
        if to.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    // A held-back connection stays open until the proxy or `cut_all` closes it.
    if *answers.borrow() == Answers::HoldBack {
        std::future::pending::<()>().await;
    }
    let _ = closed.send(true);
}

/// The frontend side of the PostgreSQL protocol, read as far as the rules need it.
#[derive(Default)]
struct Frontend {
    /// Past the startup message: every message from here on starts with a type byte.
    started: bool,
    application: Option<String>,
    /// Prepared statements' text by name ("" is the unnamed one).
    prepared: std::collections::HashMap<String, String>,
    /// The statement the last Bind bound.
    bound: String,
}

/// The SSLRequest, GSSENCRequest and CancelRequest codes: untyped messages before (or
/// instead of) the startup message.
const PRE_STARTUP: [u32; 3] = [80_877_103, 80_877_104, 80_877_102];

impl Frontend {
    /// Reads the complete messages at the start of `bytes`: how many bytes they take, and the
    /// text of every statement they execute (a Query's, or an Execute's bound statement).
    fn take(&mut self, bytes: &[u8]) -> (usize, Vec<String>) {
        let mut at = 0;
        let mut executed = Vec::new();
        loop {
            let rest = &bytes[at..];
            let (header, typed) = if self.started { (5, true) } else { (4, false) };
            if rest.len() < header {
                break;
            }
            let len_at = usize::from(typed);
            let len = u32::from_be_bytes([
                rest[len_at],
                rest[len_at + 1],
                rest[len_at + 2],
                rest[len_at + 3],
            ]) as usize;
            let total = len + usize::from(typed);
            if len < 4 || rest.len() < total {
                break;
            }
            let body = &rest[header..total];
            if typed {
                self.read(rest[0], body, &mut executed);
            } else {
                self.startup(body);
            }
            at += total;
        }
        (at, executed)
    }

    fn startup(&mut self, body: &[u8]) {
        let code = body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if code.is_some_and(|c| PRE_STARTUP.contains(&c)) {
            return;
        }
        self.started = true;
        let mut fields = body.get(4..).unwrap_or_default().split(|b| *b == 0);
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if name == b"application_name" {
                self.application = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }

    fn read(&mut self, kind: u8, body: &[u8], executed: &mut Vec<String>) {
        let mut strings = body.split(|b| *b == 0).map(String::from_utf8_lossy);
        match kind {
            b'Q' => executed.push(strings.next().unwrap_or_default().into_owned()),
            b'P' => {
                let name = strings.next().unwrap_or_default().into_owned();
                let text = strings.next().unwrap_or_default().into_owned();
                self.prepared.insert(name, text);
            }
            b'B' => {
                let _portal = strings.next();
                let statement = strings.next().unwrap_or_default();
                self.bound = self
                    .prepared
                    .get(statement.as_ref())
                    .cloned()
                    .unwrap_or_default();
            }
            b'E' => executed.push(self.bound.clone()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup(application: &str) -> Vec<u8> {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for field in ["user", "bl", "application_name", application] {
            body.extend_from_slice(field.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn the_frontend_names_its_application_and_each_executed_statement() {
        let mut frontend = Frontend::default();
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&80_877_103u32.to_be_bytes());
        let (taken, executed) = frontend.take(&ssl);
        assert_eq!((taken, executed.len(), frontend.started), (8, 0, false));

        let hello = startup("bountyline-committer");
        assert_eq!(frontend.take(&hello).0, hello.len());
        assert_eq!(
            frontend.application.as_deref(),
            Some("bountyline-committer")
        );

        let mut bytes = message(b'P', b"s1\0SELECT append_group($1)\0\0\0");
        bytes.extend(message(b'B', b"\0s1\0\0\0\0\0\0\0"));
        bytes.extend(message(b'E', b"\0\0\0\0\0"));
        bytes.extend(message(b'S', b""));
        let half = bytes.len() - 3;
        let (taken, executed) = frontend.take(&bytes[..half]);
        assert_eq!(executed, ["SELECT append_group($1)"]);
        assert_eq!(taken, half - 2, "the incomplete Sync waits for its bytes");

        let (_, executed) = frontend.take(&message(b'Q', b"SELECT 1\0"));
        assert_eq!(executed, ["SELECT 1"]);
    }

    #[test]
    fn a_rule_fires_on_its_application_and_statement_as_often_as_it_says() {
        let shared = Shared {
            upstream: "127.0.0.1:1".parse().unwrap(),
            postgres: true,
            rule: Mutex::new(None),
            fired: AtomicUsize::new(0),
            latency_ms: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            cut_all: watch::channel(0).0,
        };
        *shared.rule.lock().unwrap() = Some(Rule {
            times: 2,
            ..Rule::after_answer("committer", "append_group")
        });
        assert_eq!(shared.fire(Some("pool"), "SELECT append_group()"), None);
        assert_eq!(shared.fire(Some("committer"), "SELECT 1"), None);
        let fire = || shared.fire(Some("committer"), "SELECT append_group()");
        assert_eq!(fire(), Some(Cut::AfterAnswer));
        assert_eq!(fire(), Some(Cut::AfterAnswer));
        assert_eq!(fire(), None, "disarmed after two");
        assert_eq!(shared.fired.load(Ordering::SeqCst), 2);
    }
}
