//! Account helpers for the integration tests: register and log in over HTTP, and ready-made
//! users holding each role.

use bountyline::auth::users::{self, AdminOutcome};
use bountyline_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use super::TestApp;

/// A password that meets the rules; every helper-made user has it.
pub const GOOD_PASSWORD: &str = "correct horse battery staple";

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A unique email for `name`, so that tests sharing a database never collide.
pub fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", Uuid::new_v4())
}

impl TestApp {
    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/register"))
            .json(&json!({ "email": email, "password": password, "display_name": "Test User" }))
            .send()
            .await
            .expect("register request failed")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request failed")
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/refresh"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("refresh request failed")
    }

    /// A new member named `name-<uuid>@example.com`, registered and logged in.
    pub async fn user(&self, name: &str) -> TestUser {
        let email = unique_email(name);
        let res = self.register(&email, GOOD_PASSWORD).await;
        assert_eq!(
            res.status(),
            201,
            "register {email}: {}",
            res.text().await.unwrap_or_default()
        );
        let body: Value = res.json().await.expect("register answer is JSON");
        let id = body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        self.logged_in(id, email).await
    }

    /// A new member with this email and display name, registered and logged in.
    pub async fn user_named(&self, email: &str, display_name: &str) -> TestUser {
        let res = self
            .client
            .post(self.url("/v1/auth/register"))
            .json(
                &json!({ "email": email, "password": GOOD_PASSWORD, "display_name": display_name }),
            )
            .send()
            .await
            .expect("register request failed");
        assert_eq!(res.status(), 201, "register {email}");
        let body: Value = res.json().await.expect("register answer is JSON");
        let id = body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        self.logged_in(id, email.to_owned()).await
    }

    /// A new admin, made the way the CLI makes one, then logged in.
    pub async fn admin(&self) -> TestUser {
        let email = unique_email("admin");
        let outcome = users::create_admin(&self.pool, &email, GOOD_PASSWORD, "Test Admin")
            .await
            .expect("create_admin failed");
        let AdminOutcome::Created(user) = outcome else {
            panic!("expected a new admin, got {outcome:?}");
        };
        self.logged_in(user.id, email).await
    }

    /// A new member granted the auditor role (directly in the database), then logged in so
    /// that the access token carries the role.
    pub async fn auditor(&self) -> TestUser {
        let email = unique_email("auditor");
        let res = self.register(&email, GOOD_PASSWORD).await;
        assert_eq!(res.status(), 201, "register {email}");
        let body: Value = res.json().await.expect("register answer is JSON");
        let id: Uuid = body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        users::add_role(&self.pool, id, Role::Auditor)
            .await
            .expect("granting auditor failed")
            .expect("the auditor exists");
        self.logged_in(id, email).await
    }

    async fn logged_in(&self, id: Uuid, email: String) -> TestUser {
        let res = self.login(&email, GOOD_PASSWORD).await;
        assert_eq!(res.status(), 200, "login {email}");
        let tokens: Value = res.json().await.expect("login answer is JSON");
        TestUser {
            id,
            email,
            password: GOOD_PASSWORD.to_owned(),
            access_token: tokens["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh_token: tokens["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}
