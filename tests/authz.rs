//! Object-level and function-level authorisation (OWASP API1, API5), derived from the OpenAPI
//! document so that a new route is covered the day it is added: every operation whose path
//! names an object is called by a member who has nothing to do with that object, with a valid
//! body, and must be refused (403 or 404, problem+json, no data) and change nothing. Auditor
//! routes refuse members; admin routes refuse members and auditors. Lists show a stranger
//! none of the owner's objects.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Open to any member by design, so not refused to a stranger (each is checked otherwise).
const OPEN_BY_DESIGN: &[(&str, &str, &str)] = &[
    (
        "get",
        "/v1/bounties/{id}",
        "the board's detail is public; applications are filtered (checked below)",
    ),
    (
        "post",
        "/v1/bounties/{id}/applications",
        "any member may apply to an open bounty",
    ),
    ("get", "/dashboard/{file}", "the page's public files"),
];

/// The objects of the owner (and of a hunter) that the stranger goes after.
struct Objects {
    owner: TestUser,
    hunter: TestUser,
    task: String,
    bounty: String,
    payment: String,
    application: String,
    notification: String,
    event: String,
}

async fn json_of(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn objects(app: &TestApp) -> Objects {
    let (owner, hunter) = (app.user("owner").await, app.user("hunter").await);
    app.deposit(&owner, 10_000, "USD").await;
    let bounty = json_of(
        app.post(
            &owner,
            "/v1/bounties",
            &json!({"title": "Owned", "description": "mine",
                    "reward": {"amount": 1_000, "currency": "USD"}}),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = app.create_task(&owner, "authz", "owned task", 0).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settle().await;
    let application = json_of(
        app.post(
            &hunter,
            &format!("/v1/bounties/{bounty}/applications"),
            &json!({"pitch": "me"}),
        )
        .await,
    )
    .await["application_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settle().await;
    let detail = json_of(app.get(&owner, &format!("/v1/bounties/{bounty}")).await).await;
    let payment = detail["payment_id"].as_str().unwrap().to_owned();
    let feed = json_of(app.get(&owner, "/v1/notifications").await).await;
    let notification = feed["items"][0]["id"]
        .as_str()
        .expect("a notification")
        .to_owned();
    let event: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE metadata ->> 'actor' = $1 ORDER BY position LIMIT 1",
    )
    .bind(owner.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    Objects {
        owner,
        hunter,
        task,
        bounty,
        payment,
        application,
        notification,
        event: event.to_string(),
    }
}

/// The path with the owner's objects in place of its parameters.
fn fill(path: &str, o: &Objects) -> String {
    let id = if path.starts_with("/v1/tasks/") {
        o.task.clone()
    } else if path.contains("/bounties/") {
        o.bounty.clone()
    } else if path.starts_with("/v1/payments/") {
        o.payment.clone()
    } else if path.starts_with("/v1/notifications/") {
        o.notification.clone()
    } else if path.starts_with("/v1/admin/users/") {
        o.owner.id.to_string()
    } else if path.starts_with("/v1/audit/aggregates/") {
        o.task.clone()
    } else if path.starts_with("/v1/queues/") {
        // The stranger grants the owner's queue to the hunter (or takes it back).
        o.hunter.id.to_string()
    } else {
        "{id}".to_owned()
    };
    let filled = path
        .replace("{id}", &id)
        .replace("{user_id}", &o.owner.id.to_string())
        .replace("{application_id}", &o.application)
        .replace("{event_id}", &o.event)
        .replace("{type}", "Task")
        .replace("{role}", "auditor")
        .replace("{queue}", "authz")
        .replace("{topic}", "events")
        .replace("{file}", "app.js");
    assert!(
        !filled.contains('{'),
        "{path}: a path parameter this test does not know; say which object it names in fill()"
    );
    filled
}

/// A valid body: the schema's example, pointed at the owner's objects.
fn body_for(doc: &Value, operation: &Value, o: &Objects) -> Option<Value> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let name = schema["$ref"].as_str()?.rsplit('/').next()?;
    let mut example = doc["components"]["schemas"][name]["example"].clone();
    if let Some(fields) = example.as_object_mut() {
        if fields.contains_key("application_id") {
            fields.insert("application_id".into(), json!(o.application));
        }
        if fields.contains_key("ids") {
            fields.insert("ids".into(), json!([o.notification]));
        }
    }
    Some(if example.is_null() {
        json!({})
    } else {
        example
    })
}

async fn send(
    app: &TestApp,
    who: &TestUser,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(&who.access_token);
    if method == Method::POST {
        request = request.json(body.unwrap_or(&json!({})));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn nobody_reads_or_acts_on_what_is_not_theirs_on_any_route_with_an_id() {
    let app = TestApp::spawn().await;
    let o = objects(&app).await;
    let (stranger, auditor) = (app.user("stranger").await, app.auditor().await);
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.settle().await;
    let before = app.event_count().await;

    let mut flaws = Vec::new();
    let mut checked = 0;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let admin_only = path.starts_with("/v1/admin/");
            let audit_only = operation["tags"][0] == "audit";
            if !path.contains('{') && !admin_only && !audit_only {
                continue;
            }
            if OPEN_BY_DESIGN
                .iter()
                .any(|(m, p, _)| m == method && p == path)
            {
                continue;
            }
            let target = fill(path, &o);
            let body = body_for(&doc, operation, &o);
            let mut callers = vec![("a stranger", &stranger)];
            if admin_only {
                callers.push(("an auditor", &auditor));
            }
            for (who, caller) in callers {
                checked += 1;
                let res = send(&app, caller, method, &target, body.as_ref()).await;
                let status = res.status().as_u16();
                let kind = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if !(status == 403 || status == 404)
                    || !kind.starts_with("application/problem+json")
                {
                    let text = res.text().await.unwrap_or_default();
                    flaws.push(format!(
                        "{method} {path} by {who}: {status} {kind} {text:.200}"
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 25,
        "only {checked} calls: the document lost its routes?"
    );
    assert!(flaws.is_empty(), "refusals expected:\n{}", flaws.join("\n"));
    assert_eq!(
        app.event_count().await,
        before,
        "a refused call changed something"
    );

    // Open by design, but only so far: a stranger sees no one else's application.
    let detail = json_of(
        app.get(&stranger, &format!("/v1/bounties/{}", o.bounty))
            .await,
    )
    .await;
    assert_eq!(detail["applications"], json!([]), "{detail}");
    let hunters_view = json_of(
        app.get(&o.hunter, &format!("/v1/bounties/{}", o.bounty))
            .await,
    )
    .await;
    assert_eq!(
        hunters_view["applications"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn lists_show_a_stranger_none_of_the_owners_objects() {
    let app = TestApp::spawn().await;
    let o = objects(&app).await;
    let stranger = app.user("stranger").await;
    app.create_task(&stranger, "authz", "the stranger's own", 0)
        .await;
    app.settle().await;
    let owned: HashMap<&str, &str> = HashMap::from([
        ("task", o.task.as_str()),
        ("payment", o.payment.as_str()),
        ("notification", o.notification.as_str()),
        ("application", o.application.as_str()),
        (
            "owner",
            &*Box::leak(o.owner.id.to_string().into_boxed_str()),
        ),
    ]);
    let lists = [
        "/v1/tasks".to_owned(),
        format!("/v1/tasks?creator={}", o.owner.id),
        "/v1/payments".to_owned(),
        format!("/v1/payments?user={}", o.owner.id),
        format!("/v1/payments?bounty_id={}", o.bounty),
        "/v1/notifications".to_owned(),
        "/v1/wallets/me".to_owned(),
        "/v1/wallets/me/entries".to_owned(),
        "/v1/me".to_owned(),
    ];
    for list in lists {
        let res = app.get(&stranger, &list).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if status == 403 {
            continue;
        }
        assert_eq!(status, 200, "{list}: {text}");
        for (what, id) in &owned {
            assert!(
                !text.contains(id),
                "{list} shows the stranger the owner's {what}: {text}"
            );
        }
    }
}
