//! Authorization that is current (issue 23): the roles and state of an account are read on
//! every request (kept for at most `auth.session_cache_ms`, 1 s here), not taken from the
//! access token. A demotion, a disable, a log out everywhere or an admin's revoke reaches
//! every token within a second on every API process (at once on the one that made it); no one
//! changes their own roles; ending sessions forgets those sessions only.

mod common;

use bountyline::startup::Parts;
use common::*;
use serde_json::json;
use std::time::Duration;

/// Waits (bounded) until `user`'s GET `path` on `app` answers `status`.
async fn answers(app: &TestApp, user: &TestUser, path: &str, status: u16, what: &str) {
    wait_until(Duration::from_secs(3), what, || async {
        app.get(user, path).await.status() == status
    })
    .await;
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_within_a_second_everywhere_and_cannot_grant_it_back() {
    let app = TestApp::spawn().await;
    let other = TestApp::spawn_with(app.settings.clone(), Parts::API).await;
    let (demoted, demoter) = (app.admin().await, app.admin().await);
    let member = app.user("member").await;
    assert_eq!(app.get(&demoted, "/v1/admin/flows").await.status(), 200);
    assert_eq!(other.get(&demoted, "/v1/admin/flows").await.status(), 200);

    let path = format!("/v1/admin/users/{}/roles/admin", demoted.id);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&demoter.access_token)
        .send();
    assert_eq!(res.await.unwrap().status(), 200);

    // This process forgot the demoted admin's sessions at once; the other within a second.
    assert_eq!(app.get(&demoted, "/v1/admin/flows").await.status(), 403);
    answers(
        &other,
        &demoted,
        "/v1/admin/flows",
        403,
        "demoted on the other process",
    )
    .await;
    for target in [demoted.id, member.id] {
        let grant = format!("/v1/admin/users/{target}/roles");
        let res = app.post(&demoted, &grant, &json!({"role": "admin"})).await;
        assert_eq!(
            res.status(),
            403,
            "the demoted admin grants admin to {target}"
        );
    }
    let me: serde_json::Value = app.get(&demoted, "/v1/me").await.json().await.unwrap();
    assert_eq!(me["roles"], json!(["member"]));
}

#[tokio::test]
async fn an_admin_cannot_change_their_own_roles_or_account() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let own = |what: &str| format!("/v1/admin/users/{}/{what}", admin.id);
    let grant = app
        .post(&admin, &own("roles"), &json!({"role": "auditor"}))
        .await;
    assert_eq!(grant.status(), 403);
    let disable = app.post(&admin, &own("disable"), &json!({})).await;
    assert_eq!(disable.status(), 403);
    let removal = app.client.delete(app.url(&own("roles/admin")));
    let removal = removal
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removal.status(), 403);
}

#[tokio::test]
async fn a_disabled_account_is_out_within_a_second_everywhere_and_back_once_enabled() {
    let app = TestApp::spawn().await;
    let other = TestApp::spawn_with(app.settings.clone(), Parts::API).await;
    let (admin, user) = (app.admin().await, app.user("disabled").await);
    assert_eq!(other.get(&user, "/v1/me").await.status(), 200);

    let path = format!("/v1/admin/users/{}/disable", user.id);
    let res = app.post(&admin, &path, &json!({})).await;
    assert_eq!(res.status(), 200);
    let disabled: serde_json::Value = res.json().await.unwrap();
    assert_eq!(disabled["disabled"], true);

    assert_eq!(app.get(&user, "/v1/me").await.status(), 401);
    answers(
        &other,
        &user,
        "/v1/me",
        401,
        "disabled on the other process",
    )
    .await;
    assert_eq!(app.refresh(&user.refresh_token).await.status(), 401);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 403);

    let path = format!("/v1/admin/users/{}/enable", user.id);
    assert_eq!(app.post(&admin, &path, &json!({})).await.status(), 200);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_of_the_caller_only() {
    let app = TestApp::spawn().await;
    let user = app.user("traveller").await;
    let stranger = app.user("stranger").await;
    let second: serde_json::Value = app
        .login(&user.email, &user.password)
        .await
        .json()
        .await
        .unwrap();
    let second_access = second["access_token"].as_str().unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();

    let res = app.post(&user, "/v1/auth/logout-all", &json!({})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&user, "/v1/me").await.status(), 401);
    let me = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(second_access)
        .send();
    assert_eq!(me.await.unwrap().status(), 401, "the other device too");
    assert_eq!(app.refresh(&user.refresh_token).await.status(), 401);
    assert_eq!(app.refresh(second_refresh).await.status(), 401);
    assert_eq!(app.get(&stranger, "/v1/me").await.status(), 200);
}

#[tokio::test]
async fn an_admin_ends_every_session_of_a_user() {
    let app = TestApp::spawn().await;
    let (admin, user) = (app.admin().await, app.user("revoked").await);
    let path = format!("/v1/admin/users/{}/sessions", user.id);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin.access_token)
        .send();
    assert_eq!(res.await.unwrap().status(), 204);
    assert_eq!(app.get(&user, "/v1/me").await.status(), 401);
    assert_eq!(app.refresh(&user.refresh_token).await.status(), 401);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
    let member = app.user("member").await;
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&member.access_token)
        .send();
    assert_eq!(res.await.unwrap().status(), 403, "admins only");
}

/// A failed refresh or a logout ends only the sessions it ends: someone else spamming them
/// does not make every other user's request a database look-up.
#[tokio::test]
async fn failed_refreshes_and_logouts_leave_other_users_sessions_kept() {
    let app = TestApp::spawn().await;
    let kept = app.user("kept").await;
    assert_eq!(app.get(&kept, "/v1/me").await.status(), 200);
    let misses = "bountyline_session_checks_total{cache=\"miss\"}";
    let before = app.counter(misses).await;
    for i in 0..10 {
        assert_eq!(app.refresh("not a token").await.status(), 401);
        let logout = app.client.post(app.url("/v1/auth/logout"));
        let logout = logout
            .json(&json!({"refresh_token": format!("gone-{i}")}))
            .send();
        assert_eq!(logout.await.unwrap().status(), 204);
        assert_eq!(app.get(&kept, "/v1/me").await.status(), 200);
    }
    assert_eq!(
        app.counter(misses).await,
        before,
        "the kept session was asked again"
    );
}
