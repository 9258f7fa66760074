//! Compressed answers (API.md: "Responses are compressed (gzip, br) when the client accepts it;
//! streams are not buffered"): the API description, a JSON read and an NDJSON export come back
//! in the coding the client asked for and decode to the same bytes as an uncompressed answer;
//! a live stream is never compressed, and its messages arrive as they happen.

mod common;

use common::sse::*;
use common::*;
use std::io::Read;
use std::time::Duration;

/// The answer to GET `path` with `Accept-Encoding: accept` (and `Accept: media`), decoded:
/// its `Content-Encoding` (`None` for identity) and body.
async fn fetch(
    app: &TestApp,
    user: Option<&TestUser>,
    path: &str,
    accept: Option<&str>,
    media: &str,
) -> (Option<String>, Vec<u8>) {
    let mut request = app.client.get(app.url(path)).header("Accept", media);
    if let Some(user) = user {
        request = request.bearer_auth(&user.access_token);
    }
    if let Some(accept) = accept {
        request = request.header("Accept-Encoding", accept);
    }
    let res = request.send().await.expect("request");
    assert_eq!(res.status(), 200, "GET {path}");
    let coding = res
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let vary = res.headers().get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("accept-encoding")
    });
    let raw = res.bytes().await.expect("body").to_vec();
    let body = match coding.as_deref() {
        None => raw,
        Some("gzip") => {
            assert!(vary, "a compressed answer varies with Accept-Encoding");
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .expect("gzip");
            out
        }
        Some("br") => {
            assert!(vary, "a compressed answer varies with Accept-Encoding");
            let mut out = Vec::new();
            brotli::Decompressor::new(&raw[..], 4096)
                .read_to_end(&mut out)
                .expect("brotli");
            out
        }
        Some(other) => panic!("GET {path}: unexpected coding {other}"),
    };
    (coding, body)
}

/// Each coding the client asks for, and the body it decodes to, equal to the plain answer.
async fn assert_compressed(app: &TestApp, user: Option<&TestUser>, path: &str, media: &str) {
    let (coding, plain) = fetch(app, user, path, None, media).await;
    assert_eq!(coding, None, "GET {path} without Accept-Encoding");
    for (accept, expected) in [("gzip", "gzip"), ("br", "br"), ("gzip, br", "br")] {
        let (coding, body) = fetch(app, user, path, Some(accept), media).await;
        assert_eq!(coding.as_deref(), Some(expected), "GET {path}, {accept}");
        assert!(
            body == plain,
            "GET {path}, {accept}: decodes to another body"
        );
    }
}

#[tokio::test]
async fn the_api_description_a_read_and_an_export_are_compressed_as_the_client_asks() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let auditor = app.auditor().await;
    let task = app.create_task(&alice, "compressed", "a task", 1).await;
    app.settle().await;

    assert_compressed(&app, None, "/openapi.json", "application/json").await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().expect("an id"));
    assert_compressed(&app, Some(&alice), &path, "application/json").await;
    assert_compressed(
        &app,
        Some(&auditor),
        "/v1/audit/events",
        "application/x-ndjson",
    )
    .await;
}

#[tokio::test]
async fn a_live_stream_is_not_compressed_and_its_messages_arrive_as_they_happen() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    wait_for_hub(&app, 2).await;
    let request = app
        .client
        .get(app.url("/v1/streams/tasks"))
        .bearer_auth(&alice.access_token)
        .header("Accept-Encoding", "gzip, br");
    let res = request
        .try_clone()
        .expect("clone")
        .send()
        .await
        .expect("subscribe");
    assert_eq!(res.status(), 200);
    let coding = res.headers().get("content-encoding");
    assert!(
        coding.is_none_or(|c| c == "identity"),
        "a live stream came {coding:?}"
    );
    drop(res);

    let mut stream = SseStream::from_request(request, "tasks").await;
    for i in 0..3 {
        let created = app
            .create_task(&alice, "live", &format!("task {i}"), 1)
            .await;
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next_message())
            .await
            .expect("each message arrives while the stream is otherwise quiet");
        assert_eq!(message.data["task_id"], created["id"]);
    }
    app.shutdown.trigger().await;
}
