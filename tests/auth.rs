//! Accounts over HTTP: registration, login, token refresh and reuse detection, logout, forged
//! access tokens, and the admin role routes.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bountyline::auth::users::{self, AdminOutcome};
use common::accounts::{unique_email, TestUser, GOOD_PASSWORD};
use common::TestApp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

async fn me(app: &TestApp, access_token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/me"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

async fn logout(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    post_json(
        app,
        "/v1/auth/logout",
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn grant(app: &TestApp, caller: &TestUser, user: Uuid, role: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/admin/users/{user}/roles")))
        .bearer_auth(&caller.access_token)
        .json(&json!({ "role": role }))
        .send()
        .await
        .unwrap()
}

async fn revoke(app: &TestApp, caller: &TestUser, user: Uuid, role: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/v1/admin/users/{user}/roles/{role}")))
        .bearer_auth(&caller.access_token)
        .send()
        .await
        .unwrap()
}

/// Signs `claims` with the server's real secret, so that only what the test changed is wrong.
fn sign(app: &TestApp, alg: Algorithm, claims: &Value) -> String {
    let key = EncodingKey::from_secret(app.settings.auth.jwt_secret.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

/// The claims the server would issue itself for `user`.
fn good_claims(app: &TestApp, user: &TestUser) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": user.id,
        "roles": ["member"],
        "iss": app.settings.auth.issuer,
        "aud": app.settings.auth.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": Uuid::new_v4(),
        // The session of the user's real login: a forged token for an ended one is refused.
        "sid": payload_of(&user.access_token)["sid"],
    })
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

fn payload_of(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_registered_user_can_log_in_and_read_their_own_account() {
    let app = TestApp::spawn().await;
    let email = unique_email("ann");

    let res = post_json(
            &app,
            "/v1/auth/register",
            &json!({ "email": format!("  {email} "), "password": GOOD_PASSWORD, "display_name": " Ann " }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created = json_of(res).await;
    assert_eq!(created["email"], email.as_str(), "the email is trimmed");
    assert_eq!(created["display_name"], "Ann");
    assert_eq!(created["roles"], json!(["member"]));
    let mut fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["display_name", "email", "id", "roles"]);

    let res = app.login(&email.to_uppercase(), GOOD_PASSWORD).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "login ignores the email's case"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens = json_of(res).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() > 0);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
    let access = tokens["access_token"].as_str().unwrap();
    let claims = payload_of(access);
    assert_eq!(claims["sub"], created["id"]);
    assert_eq!(claims["roles"], json!(["member"]));

    let res = me(&app, access).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_of(res).await, created);
}

#[tokio::test]
async fn registering_an_email_that_has_an_account_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    let user = app.user("bob").await;

    for email in [user.email.clone(), user.email.to_uppercase()] {
        let res = app.register(&email, GOOD_PASSWORD).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem = json_of(res).await;
        assert_eq!(
            problem["type"],
            "https://bountyline.dev/problems/email-taken"
        );
    }
}

#[tokio::test]
async fn registration_with_invalid_fields_is_refused_with_422_naming_them() {
    let app = TestApp::spawn().await;
    let email = unique_email("carol");
    let cases = [
        (
            json!({ "email": email, "password": "short", "display_name": "C" }),
            Some("password"),
        ),
        (
            json!({ "email": email, "password": "        \t  ", "display_name": "C" }),
            Some("password"),
        ),
        (
            json!({ "email": email, "password": "x".repeat(129), "display_name": "C" }),
            Some("password"),
        ),
        (
            json!({ "email": "not-an-email", "password": GOOD_PASSWORD, "display_name": "C" }),
            Some("email"),
        ),
        (
            json!({ "email": email, "password": GOOD_PASSWORD, "display_name": "   " }),
            Some("display_name"),
        ),
        (
            json!({ "email": email, "password": GOOD_PASSWORD, "display_name": "C", "admin": true }),
            None,
        ),
        (json!({ "email": email, "password": GOOD_PASSWORD }), None),
        (
            json!({ "email": email, "password": 12345678, "display_name": "C" }),
            None,
        ),
    ];
    for (body, field) in cases {
        let res = post_json(&app, "/v1/auth/register", &body).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem = json_of(res).await;
        assert_eq!(
            problem["type"], "https://bountyline.dev/problems/validation",
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{body}");
        }
    }

    let res = app.register(&email, &"y".repeat(64)).await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "64-character passwords are accepted"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let app = TestApp::spawn().await;
    for path in ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"] {
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body("{'email': 'a@example.com'}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let user = app.user("dave").await;

    let wrong_password = app.login(&user.email, "not the password").await;
    let unknown_email = app.login(&unique_email("nobody"), "not the password").await;

    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_password.headers().get("content-type"),
        unknown_email.headers().get("content-type")
    );
    assert_eq!(
        wrong_password.text().await.unwrap(),
        unknown_email.text().await.unwrap()
    );

    // Nor does the time: both verify against an argon2 hash (a dummy one for an unknown
    // email). Skipping it would make unknown emails tens of times faster; alternating rounds
    // and medians keep a busy machine's noise well inside the bound.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        let started = std::time::Instant::now();
        app.login(&user.email, "not the password").await;
        known.push(started.elapsed());
        let started = std::time::Instant::now();
        app.login(&unique_email("nobody"), "not the password").await;
        unknown.push(started.elapsed());
    }
    known.sort();
    unknown.sort();
    let (a, b) = (known[3].as_secs_f64(), unknown[3].as_secs_f64());
    assert!(
        a.max(b) / a.min(b) < 3.0,
        "median login time: wrong password {a:.4}s, unknown email {b:.4}s"
    );
}

#[tokio::test]
async fn refreshing_rotates_the_refresh_token_and_the_old_one_stops_working() {
    let app = TestApp::spawn().await;
    let user = app.user("erin").await;

    let res = app.refresh(&user.refresh_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pair = json_of(res).await;
    let next = pair["refresh_token"].as_str().unwrap();
    assert_ne!(next, user.refresh_token);
    assert_eq!(
        me(&app, pair["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );

    let res = app.refresh(&user.refresh_token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh("never-issued").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_access_token_ends_with_its_session_at_refresh_and_at_logout() {
    let app = TestApp::spawn().await;
    let user = app.user("ivan").await;
    let other_login = json_of(app.login(&user.email, GOOD_PASSWORD).await).await;
    let other_access = other_login["access_token"].as_str().unwrap();

    // A refresh ends the session the old access token named; the new one works.
    let pair = json_of(app.refresh(&user.refresh_token).await).await;
    let new_access = pair["access_token"].as_str().unwrap();
    assert_eq!(
        me(&app, &user.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let stream = app
        .client
        .get(app.url(&format!(
            "/v1/streams/tasks?access_token={}",
            user.access_token
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, new_access).await.status(), StatusCode::OK);

    // Logging out ends it too, and only that login's session.
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert_eq!(logout(&app, refresh).await.status(), StatusCode::NO_CONTENT);
    let res = me(&app, new_access).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let problem = json_of(res).await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("session has ended"));
    assert_eq!(me(&app, other_access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let user = app.user("frank").await;
    let other_login = json_of(app.login(&user.email, GOOD_PASSWORD).await).await;

    let second = json_of(app.refresh(&user.refresh_token).await).await;
    let second = second["refresh_token"].as_str().unwrap().to_owned();
    let third = json_of(app.refresh(&second).await).await;
    let newest = third["refresh_token"].as_str().unwrap().to_owned();

    // A thief replays the first token: refused, and the family dies with it.
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&newest).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Another login is another family, untouched.
    let other = other_login["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_concurrent_refreshes_with_one_token_never_both_succeed() {
    let app = TestApp::spawn().await;
    let user = app.user("olga").await;

    let (a, b) = tokio::join!(
        app.refresh(&user.refresh_token),
        app.refresh(&user.refresh_token)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);

    // The loser looked like a replay, so the winner's new token went down with the family.
    let winner = if a.status() == StatusCode::OK { a } else { b };
    let next = json_of(winner).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.refresh(&next).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logging_out_revokes_the_refresh_token_and_can_be_repeated() {
    let app = TestApp::spawn().await;
    let user = app.user("grace").await;
    let rotated = json_of(app.refresh(&user.refresh_token).await).await;
    let current = rotated["refresh_token"].as_str().unwrap();

    assert_eq!(logout(&app, current).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(current).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(logout(&app, current).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        logout(&app, "never-issued").await.status(),
        StatusCode::NO_CONTENT
    );

    let res = post_json(&app, "/v1/auth/logout", &json!({ "token": current })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn forged_expired_or_misdirected_access_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user("heidi").await;
    assert_eq!(
        me(
            &app,
            &sign(&app, Algorithm::HS256, &good_claims(&app, &user))
        )
        .await
        .status(),
        200
    );

    let mut expired = good_claims(&app, &user);
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 60);
    let mut other_audience = good_claims(&app, &user);
    other_audience["aud"] = json!("someone-else");
    let mut other_issuer = good_claims(&app, &user);
    other_issuer["iss"] = json!("mallory");
    let mut no_expiry = good_claims(&app, &user);
    no_expiry.as_object_mut().unwrap().remove("exp");
    let mut not_yet = good_claims(&app, &user);
    not_yet["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(&app, &user),
        &EncodingKey::from_secret(b"another key entirely, just as long as ours"),
    )
    .unwrap();

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let admin_claims = {
        let mut c = good_claims(&app, &user);
        c["roles"] = json!(["member", "admin"]);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
    };
    let mut parts: Vec<String> = user.access_token.split('.').map(str::to_owned).collect();
    parts[1] = admin_claims.clone();
    let tampered = parts.join(".");

    let cases = [
        ("expired", sign(&app, Algorithm::HS256, &expired)),
        (
            "wrong audience",
            sign(&app, Algorithm::HS256, &other_audience),
        ),
        ("wrong issuer", sign(&app, Algorithm::HS256, &other_issuer)),
        ("no exp", sign(&app, Algorithm::HS256, &no_expiry)),
        ("not yet valid", sign(&app, Algorithm::HS256, &not_yet)),
        ("signed with another key", other_key),
        (
            "HS384",
            sign(&app, Algorithm::HS384, &good_claims(&app, &user)),
        ),
        ("alg none", format!("{none_header}.{admin_claims}.")),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in cases {
        let res = me(&app, &token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{what}");
        assert_eq!(
            json_of(res).await["type"],
            "https://bountyline.dev/problems/unauthenticated",
            "{what}"
        );
    }

    let res = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no header");
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("authorization", format!("Basic {}", user.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "wrong scheme");
}

#[tokio::test]
async fn only_admins_may_grant_and_remove_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let member = app.user("ivan").await;
    let target = app.user("judy").await;

    assert_eq!(
        grant(&app, &member, target.id, "auditor").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        revoke(&app, &member, target.id, "auditor").await.status(),
        StatusCode::FORBIDDEN
    );

    let res = grant(&app, &admin, target.id, "auditor").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_of(res).await;
    assert_eq!(body["id"], json!(target.id));
    assert_eq!(body["roles"], json!(["member", "auditor"]));
    let again = json_of(grant(&app, &admin, target.id, "auditor").await).await;
    assert_eq!(
        again["roles"],
        json!(["member", "auditor"]),
        "granting twice changes nothing"
    );

    // The access token already issued keeps its roles; the next refresh picks up the grant.
    assert_eq!(payload_of(&target.access_token)["roles"], json!(["member"]));
    let pair = json_of(app.refresh(&target.refresh_token).await).await;
    let refreshed = pair["access_token"].as_str().unwrap();
    assert_eq!(payload_of(refreshed)["roles"], json!(["member", "auditor"]));

    let res = revoke(&app, &admin, target.id, "auditor").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_of(res).await["roles"], json!(["member"]));

    let res = revoke(&app, &admin, target.id, "member").await;
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "member cannot be removed"
    );
    let res = grant(&app, &admin, target.id, "overlord").await;
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown role"
    );
    let res = revoke(&app, &admin, target.id, "overlord").await;
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown role"
    );
    let res = grant(&app, &admin, Uuid::new_v4(), "auditor").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "unknown user");
    let res = revoke(&app, &admin, Uuid::new_v4(), "auditor").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "unknown user");
}

#[tokio::test]
async fn a_role_granted_to_a_member_takes_effect_at_once_with_the_token_they_hold() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut promoted = app.user("ken").await;
    let bystander = app.user("lou").await;

    assert_eq!(
        grant(&app, &admin, promoted.id, "admin").await.status(),
        StatusCode::OK
    );
    // Roles are read as they stand on every request (issue 23), not from the token.
    assert_eq!(
        grant(&app, &promoted, bystander.id, "auditor")
            .await
            .status(),
        StatusCode::OK,
        "the access token issued before the grant"
    );
    let pair = json_of(app.refresh(&promoted.refresh_token).await).await;
    promoted.access_token = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        grant(&app, &promoted, bystander.id, "auditor")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_helpers_make_admins_and_auditors_with_their_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    assert_eq!(
        json_of(me(&app, &admin.access_token).await).await["roles"],
        json!(["member", "admin"])
    );
    assert_eq!(
        json_of(me(&app, &auditor.access_token).await).await["roles"],
        json!(["member", "auditor"])
    );
    assert_eq!(
        payload_of(&auditor.access_token)["roles"],
        json!(["member", "auditor"])
    );
}

#[tokio::test]
async fn create_admin_promotes_an_existing_account_without_touching_its_password() {
    let app = TestApp::spawn().await;
    let user = app.user("mia").await;

    let outcome = users::create_admin(&app.pool, &user.email, "another password", "Ignored")
        .await
        .unwrap();
    let AdminOutcome::Promoted(promoted) = outcome else {
        panic!("expected a promotion, got {outcome:?}");
    };
    assert_eq!(promoted.id, user.id);
    assert!(promoted.roles.contains(&bountyline_domain::Role::Admin));

    let again = users::create_admin(&app.pool, &user.email, "x", "y")
        .await
        .unwrap();
    assert!(matches!(again, AdminOutcome::AlreadyAdmin(_)));
    assert_eq!(
        app.login(&user.email, GOOD_PASSWORD).await.status(),
        StatusCode::OK
    );

    let refused = users::create_admin(&app.pool, &unique_email("new"), "short", "New").await;
    assert!(refused.unwrap_err().to_string().contains("password"));
}

#[tokio::test]
async fn no_answer_ever_contains_the_password_or_its_hash() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let email = unique_email("nina");

    let mut bodies = vec![app
        .register(&email, GOOD_PASSWORD)
        .await
        .text()
        .await
        .unwrap()];
    let login = json_of(app.login(&email, GOOD_PASSWORD).await).await;
    bodies.push(login.to_string());
    let access = login["access_token"].as_str().unwrap();
    let mine = json_of(me(&app, access).await).await;
    bodies.push(mine.to_string());
    let id: Uuid = mine["id"].as_str().unwrap().parse().unwrap();
    bodies.push(
        grant(&app, &admin, id, "auditor")
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        revoke(&app, &admin, id, "auditor")
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        app.register(&email, GOOD_PASSWORD)
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(
        app.login(&email, "wrong password")
            .await
            .text()
            .await
            .unwrap(),
    );
    bodies.push(payload_of(access).to_string());

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    for body in &bodies {
        assert!(!body.contains(GOOD_PASSWORD), "{body}");
        assert!(!body.contains("argon2"), "{body}");
        assert!(!body.contains(&stored), "{body}");
        assert!(!body.contains("password_hash"), "{body}");
    }
}
