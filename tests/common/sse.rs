//! A small SSE reader over reqwest's byte stream, for the tests of live streams.

use bountyline::nats::Names;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

use super::{wait_until, TestApp, TestUser};

/// How long one read from a stream may take.
pub const READ_LIMIT: Duration = Duration::from_secs(10);

/// One SSE message: `id:` (a position), `event:` and the JSON `data:`.
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

pub struct SseStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl SseStream {
    /// Subscribes to `topic` (Bearer token), resuming after `last_event_id` if given.
    pub async fn open(
        app: &TestApp,
        user: &TestUser,
        topic: &str,
        last_event_id: Option<&str>,
    ) -> SseStream {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/streams/{topic}")))
            .bearer_auth(&user.access_token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        Self::from_request(request, topic).await
    }

    /// Subscribes with `request` as it is (a browser's way: token and resume point in the
    /// query string, say).
    pub async fn from_request(request: reqwest::RequestBuilder, topic: &str) -> SseStream {
        let res = tokio::time::timeout(READ_LIMIT, request.send())
            .await
            .expect("the stream answered in time")
            .expect("stream request");
        assert_eq!(res.status(), 200, "subscribe to {topic}");
        assert!(content_type(&res).starts_with("text/event-stream"));
        SseStream {
            body: Box::pin(res.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next message with data, skipping comments and `retry:`; fails after READ_LIMIT.
    pub async fn next_message(&mut self) -> SseMessage {
        tokio::time::timeout(READ_LIMIT, self.read_message())
            .await
            .unwrap_or_else(|_| panic!("no SSE message within {READ_LIMIT:?}"))
            .expect("the stream ended")
    }

    pub async fn next_messages(&mut self, n: usize) -> Vec<SseMessage> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_message().await);
        }
        out
    }

    /// Fails if a message with data arrives within `period`.
    pub async fn expect_no_message(&mut self, period: Duration) {
        if let Ok(Some(message)) = tokio::time::timeout(period, self.read_message()).await {
            panic!("unexpected message {message:?}");
        }
    }

    /// Everything the server sends within `period`, as text.
    pub async fn read_raw_for(mut self, period: Duration) -> String {
        let deadline = tokio::time::Instant::now() + period;
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, self.body.next()).await {
            self.buffer.extend_from_slice(&chunk.expect("stream chunk"));
        }
        String::from_utf8(self.buffer).expect("SSE is UTF-8")
    }

    /// Whether the server ends the stream within `period` (anything it sends meanwhile is
    /// dropped).
    pub async fn ends_within(mut self, period: Duration) -> bool {
        let drain = async { while let Some(Ok(_)) = self.body.next().await {} };
        tokio::time::timeout(period, drain).await.is_ok()
    }

    async fn read_message(&mut self) -> Option<SseMessage> {
        loop {
            while let Some(block) = self.take_block() {
                if let Some(message) = parse_block(&block) {
                    return Some(message);
                }
            }
            let chunk = self.body.next().await?.expect("stream chunk");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The next complete block (up to a blank line), if the buffer holds one.
    fn take_block(&mut self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.buffer).replace("\r\n", "\n");
        let end = text.find("\n\n")?;
        let block = text[..end].to_owned();
        self.buffer = text.as_bytes()[end + 2..].to_vec();
        Some(block)
    }
}

/// A block with `data:` becomes a message; comments and `retry:` blocks do not.
fn parse_block(block: &str) -> Option<SseMessage> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.parse::<i64>().expect("id is a position")),
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseMessage {
        id: id.unwrap_or_else(|| panic!("a message without id: {block:?}")),
        event: event.unwrap_or_else(|| "message".to_owned()),
        data: serde_json::from_str(&data.join("\n")).expect("data is JSON"),
    })
}

pub fn ids(messages: &[SseMessage]) -> Vec<i64> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids are not strictly increasing: {ids:?}"
    );
    ids
}

pub fn positions(answers: &[Value]) -> Vec<i64> {
    answers
        .iter()
        .map(|a| {
            a["position"]
                .as_i64()
                .unwrap_or_else(|| panic!("no position in {a}"))
        })
        .collect()
}

pub fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A client without `Last-Event-ID` starts live, so the hub must already follow the stream:
/// wait until the stream has `consumers` consumers (the hub's, and the projection's durable
/// one when the app runs workers).
pub async fn wait_for_hub(app: &TestApp, consumers: usize) {
    let client = async_nats::connect(&app.settings.nats_url)
        .await
        .expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let name = Names::new(&app.settings.nats_prefix).stream();
    wait_until(
        Duration::from_secs(10),
        "the SSE hub to follow the event stream",
        || {
            let (js, name) = (&js, &name);
            async move {
                match js.get_stream(name).await {
                    Ok(stream) => stream.cached_info().state.consumer_count >= consumers,
                    Err(_) => false,
                }
            }
        },
    )
    .await;
}
