//! The OpenAPI document (`GET /openapi.json`) against the server that serves it: it is OpenAPI
//! 3.1; every operation says how it fails, what it reads and who may call it; it names exactly
//! the routes `src/http/routes/*.rs` registers, no more and no fewer; and every operation it
//! names is answered by a handler, not by the "no such route" fallback. Swagger UI is served
//! from assets inside the binary.

mod common;

use std::collections::BTreeSet;

use common::TestApp;
use regex::Regex;
use reqwest::{header, Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

/// Operations anyone may call: no security requirement.
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/v1/auth/register"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/dashboard"),
    ("get", "/dashboard/"),
    ("get", "/dashboard/{file}"),
];

/// Operations that cannot be refused: nothing a client sends makes them answer a 4xx.
const NEVER_REFUSED: &[(&str, &str)] = &[
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/dashboard"),
    ("get", "/dashboard/"),
];

/// Registrations in `src/http/routes` that are not operations of the document, with why.
const NOT_OPERATIONS: &[&str] = &[
    // Swagger UI's own page and assets (`/docs/`, `/docs/swagger-ui.css`, ...): they serve
    // the document, they are not part of the API it describes.
    r#"SwaggerUi::new("/docs/{_:.*}")"#,
];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

type Operation = (String, String);

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    res.json().await.expect("the document is JSON")
}

/// Every (method, path) in the document, with its operation object.
fn operations(doc: &Value) -> Vec<(Operation, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter_map(move |m| item.get(*m).map(|op| ((m.to_string(), path.clone()), op)))
        })
        .collect()
}

fn listed(list: &[(&str, &str)], (method, path): &Operation) -> bool {
    list.iter().any(|(m, p)| m == method && p == path)
}

/// `$ref`s point into the document's components.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => value,
    }
}

/// Whether `media` (a media type object) shows an example, itself or in its schema (or, for
/// an optional body, in the schema it may be).
fn has_example(doc: &Value, media: &Value) -> bool {
    let schema = &media["schema"];
    let alternatives = schema["oneOf"].as_array().into_iter().flatten();
    std::iter::once(media)
        .chain(std::iter::once(schema))
        .chain(alternatives)
        .map(|v| resolve(doc, v))
        .any(|v| v.get("example").is_some() || v.get("examples").is_some())
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_operation_says_how_it_fails_and_who_may_call_it() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi is {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "bountyline");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["webhook_signature"]["in"], "header");
    assert_eq!(schemes["webhook_signature"]["name"], "X-Signature");

    let mut flaws = Vec::new();
    let mut ids = BTreeSet::new();
    for (op, operation) in operations(&doc) {
        let mut found = Vec::new();
        if !operation["operationId"]
            .as_str()
            .is_some_and(|id| ids.insert(id.to_owned()))
        {
            found.push("no operationId, or one another operation has".to_owned());
        }
        if operation["tags"].as_array().is_none_or(Vec::is_empty) {
            found.push("no tag".to_owned());
        }
        found.extend(response_flaws(&doc, &op, operation));
        found.extend(body_flaws(&doc, operation));
        found.extend(parameter_flaws(&op, operation));
        found.extend(security_flaws(&doc, &op, operation));
        let (method, path) = &op;
        flaws.extend(found.into_iter().map(|f| format!("{method} {path}: {f}")));
    }
    assert!(flaws.is_empty(), "{}", flaws.join("\n"));
}

/// A success answer; every 4xx a `Problem` as problem+json; a 4xx at all unless the
/// operation cannot be refused.
fn response_flaws(doc: &Value, op: &Operation, operation: &Value) -> Vec<String> {
    let mut flaws = Vec::new();
    let responses = operation["responses"].as_object().expect("responses");
    if !responses.keys().any(|s| s.starts_with(['2', '3'])) {
        flaws.push("no success response".to_owned());
    }
    let refusals: Vec<_> = responses
        .iter()
        .filter(|(status, _)| status.starts_with('4'))
        .collect();
    if refusals.is_empty() && !listed(NEVER_REFUSED, op) {
        flaws.push("no 4xx answer documented".to_owned());
    }
    for (status, response) in refusals {
        let media = &resolve(doc, response)["content"]["application/problem+json"];
        if media["schema"]["$ref"] != "#/components/schemas/Problem" {
            flaws.push(format!("{status} is not a Problem as problem+json"));
        }
    }
    flaws
}

/// A request body has a schema and an example.
fn body_flaws(doc: &Value, operation: &Value) -> Vec<String> {
    let Some(body) = operation.get("requestBody") else {
        return Vec::new();
    };
    let media = body["content"].as_object().and_then(|c| c.values().next());
    match media {
        Some(media) if media.get("schema").is_some() => {
            if has_example(doc, media) {
                Vec::new()
            } else {
                vec!["the request body has no example".to_owned()]
            }
        }
        _ => vec!["the request body has no schema".to_owned()],
    }
}

/// Every parameter is described, and every `{placeholder}` of the path is a parameter.
fn parameter_flaws((_, path): &Operation, operation: &Value) -> Vec<String> {
    let params: Vec<&Value> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let undescribed = params
        .iter()
        .filter(|p| p["description"].as_str().is_none_or(str::is_empty))
        .map(|p| format!("parameter {} has no description", p["name"]));
    let undeclared = placeholders(path)
        .into_iter()
        .filter(|name| {
            !params
                .iter()
                .any(|p| p["in"] == "path" && p["name"] == name.as_str())
        })
        .map(|name| format!("path parameter {{{name}}} is not declared"));
    undescribed.chain(undeclared).collect()
}

/// Public operations name no security requirement; every other names defined schemes.
fn security_flaws(doc: &Value, op: &Operation, operation: &Value) -> Vec<String> {
    let schemes = &doc["components"]["securitySchemes"];
    let requirements = operation["security"].as_array().filter(|s| !s.is_empty());
    match (listed(PUBLIC, op), requirements) {
        (true, None) => Vec::new(),
        (true, Some(_)) => vec!["a public operation names a security requirement".to_owned()],
        (false, None) => vec!["no security requirement".to_owned()],
        (false, Some(requirements)) => requirements
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|r| r.keys())
            .filter(|name| schemes.get(name.as_str()).is_none())
            .map(|name| format!("security scheme {name} is not defined"))
            .collect(),
    }
}

/// A path's `{name}` segment, or actix's `{name:regex}`; the name is the first group.
fn segment() -> Regex {
    Regex::new(r"\{([^}:]+)(:[^}]*)?\}").unwrap()
}

fn placeholders(path: &str) -> Vec<String> {
    segment()
        .captures_iter(path)
        .map(|c| c[1].to_owned())
        .collect()
}

/// Every (method, path) the route modules register, read from their source so that a new
/// module is covered without being named here. Fails on any registration it cannot read.
fn registered_routes() -> BTreeSet<Operation> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/routes");
    // `.route("/path", web::get().to(handler))`, possibly over several lines.
    let route = Regex::new(r#"\.route\(\s*"([^"]+)"\s*,\s*web::(\w+)\(\)"#).unwrap();
    let other = Regex::new(r"\.route\(|\.service\(|web::resource\(|web::scope\(").unwrap();
    let segment = segment();
    let mut routes = BTreeSet::new();
    let mut unread = Vec::new();
    for entry in std::fs::read_dir(dir).expect("routes directory") {
        let file = entry.expect("entry").path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("read route module");
        let read: Vec<_> = route.captures_iter(&source).collect();
        for c in &read {
            let method = c[2].to_owned();
            assert!(
                METHODS.contains(&method.as_str()),
                "web::{method}() in {file:?}"
            );
            // Actix's `{name:regex}` segments are `{name}` in OpenAPI.
            let path = segment.replace_all(&c[1], "{$1}");
            routes.insert((method, path.into_owned()));
        }
        let exempt = NOT_OPERATIONS
            .iter()
            .filter(|e| source.contains(*e))
            .count();
        let registrations = other.find_iter(&source).count();
        if registrations != read.len() + exempt {
            unread.push(format!(
                "{}: {registrations} registrations, {} read as `.route(\"/path\", web::method()...)`",
                file.display(),
                read.len() + exempt
            ));
        }
    }
    assert!(
        unread.is_empty(),
        "registrations this test cannot read (use the `.route` form, or teach it the new one):\n{}",
        unread.join("\n")
    );
    routes
}

#[tokio::test]
async fn the_document_names_exactly_the_routes_the_server_registers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let documented: BTreeSet<Operation> = operations(&doc).into_iter().map(|(op, _)| op).collect();
    let registered = registered_routes();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unregistered.is_empty(),
        "registered but not in the document (annotate the handler with #[utoipa::path] and \
         list it in src/http/openapi.rs): {undocumented:?}\n\
         in the document but not registered: {unregistered:?}"
    );
    assert!(
        registered.len() > 50,
        "read only {} routes",
        registered.len()
    );
}

/// The type the server's fallback answers with when no route matches.
const NO_SUCH_ROUTE: &str = "https://bountyline.dev/problems/no-such-route";

async fn problem_type(res: reqwest::Response) -> Option<String> {
    let json: Value = res.json().await.ok()?;
    json["type"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_a_handler() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let res = client
        .get(app.url("/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_type(res).await.as_deref(), Some(NO_SUCH_ROUTE));

    let doc = document(&app).await;
    let segment = segment();
    let mut unanswered = Vec::new();
    for ((method, path), operation) in operations(&doc) {
        let uuids: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path" && p["schema"]["format"] == "uuid")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let url = segment.replace_all(&path, |c: &regex::Captures| match &c[1] {
            "topic" => "tasks".to_owned(),
            name if uuids.contains(&name) => Uuid::new_v4().to_string(),
            _ => "x".to_owned(),
        });
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = client
            .request(method.clone(), app.url(&url))
            .header(header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::NOT_FOUND
            && problem_type(res).await.as_deref() == Some(NO_SUCH_ROUTE)
        {
            unanswered.push(format!("{method} {url}"));
        }
    }
    assert!(
        unanswered.is_empty(),
        "documented but answered by the no-such-route fallback: {unanswered:?}"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_assets_in_the_binary() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let res = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()[header::LOCATION], "/docs/");

    let res = client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = res.text().await.unwrap();
    assert!(page.to_lowercase().contains("swagger"), "{page}");

    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let res = client
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{asset} is empty");
    }
    let initializer = client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}
