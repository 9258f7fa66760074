//! User accounts: creation with validated email and display name, look-ups, and role grants.
//!
//! Accounts are plain rows, not events (see migration 0003): credentials must never enter the
//! append-only history. [`User`] deliberately has no password hash, so it can be serialised
//! into any response; the hash only leaves the database through [`find_credentials`].

use bountyline_domain::Role;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password;
use crate::http::error::{ApiError, ApiResult, FieldProblem};

/// RFC 5321's limit on a forward path, the longest email that can actually be delivered.
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A user as the API shows it: `{id, email, display_name, roles}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "Ada")]
    pub display_name: String,
    /// `member`, `admin` and/or `auditor`.
    #[schema(value_type = Vec<String>, example = json!(["member"]))]
    pub roles: Vec<Role>,
    /// Present, and true, only for an account an admin disabled: it cannot sign in and has no
    /// sessions.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(example = false)]
    pub disabled: bool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    roles: Vec<String>,
    disabled: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            roles: roles_of(row.id, &row.roles),
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            disabled: row.disabled,
        }
    }
}

/// The roles stored for `user`, those this build knows.
pub fn roles_of(user: Uuid, stored: &[String]) -> Vec<Role> {
    stored
        .iter()
        .filter_map(|r| {
            let role = Role::parse(r);
            if role.is_none() {
                tracing::warn!(user_id = %user, role = %r, "unknown role in users table ignored");
            }
            role
        })
        .collect()
}

const COLUMNS: &str = "id, email, display_name, roles, disabled_at IS NOT NULL AS disabled";

/// A registration whose fields have passed validation; only [`NewUser::parse`] makes one.
pub struct NewUser {
    email: String,
    display_name: String,
    password: SecretString,
}

impl NewUser {
    /// Validates every field and reports all problems at once, as one 422.
    pub fn parse(email: &str, password: SecretString, display_name: &str) -> ApiResult<Self> {
        let mut problems = Vec::new();
        let mut check = |field: &str, result: Result<String, String>| match result {
            Ok(value) => Some(value),
            Err(message) => {
                problems.push(FieldProblem {
                    field: field.to_owned(),
                    message,
                });
                None
            }
        };
        let email = check("email", parse_email(email));
        let display_name = check("display_name", parse_display_name(display_name));
        check(
            "password",
            password::problem(password.expose_secret()).map_or(Ok(String::new()), Err),
        );
        match (email, display_name) {
            (Some(email), Some(display_name)) if problems.is_empty() => Ok(NewUser {
                email,
                display_name,
                password,
            }),
            _ => Err(ApiError::Invalid {
                detail: problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                fields: problems,
            }),
        }
    }
}

/// Trims an email and checks that it looks like one: a non-empty local part, one `@`, a dotted
/// domain, no spaces. Case is kept as typed; uniqueness and look-ups ignore it.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim();
    // What was sent, white space included, as the API document states the bound.
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!("must be at most {MAX_EMAIL_CHARS} characters long"));
    }
    let looks_right = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| !label.is_empty())
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if looks_right {
        Ok(email.to_owned())
    } else {
        Err("must be an email address such as name@example.com".to_owned())
    }
}

/// Trims a display name and checks it is 1 to 100 characters without control characters. The
/// bound holds for what was sent, white space included, as the API document states it (and as
/// the domain's texts do).
pub fn parse_display_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        Err("must not be empty".to_owned())
    } else if raw.chars().count() > MAX_DISPLAY_NAME_CHARS {
        Err(format!(
            "must be at most {MAX_DISPLAY_NAME_CHARS} characters long"
        ))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(name.to_owned())
    }
}

/// Hashes the password and inserts the user with `roles`; 409 `email-taken` if the email (in
/// any case) already has an account.
pub async fn create(pool: &PgPool, new: NewUser, roles: &[Role]) -> ApiResult<User> {
    let hash = password::hash(new.password).await?;
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let row: UserRow = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, roles)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(&new.email)
    .bind(&new.display_name)
    .bind(&hash)
    .bind(&roles)
    .fetch_one(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            ApiError::Conflict {
                kind: "email-taken",
                detail: "an account with this email already exists".to_owned(),
            }
        }
        _ => ApiError::from(e),
    })?;
    Ok(row.into())
}

pub async fn find_by_id(pool: &PgPool, id: Uuid) -> ApiResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(User::from))
}

pub async fn find_by_email(pool: &PgPool, email: &str) -> ApiResult<Option<User>> {
    Ok(find_credentials(pool, email).await?.map(|(user, _)| user))
}

/// The user and their password hash, for login only. The email is trimmed, compared without case.
pub async fn find_credentials(pool: &PgPool, email: &str) -> ApiResult<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email.trim())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.user.into(), r.password_hash)))
}

/// Grants `role` (idempotent); `None` if there is no such user.
pub async fn add_role(pool: &PgPool, id: Uuid, role: Role) -> ApiResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "UPDATE users SET roles = CASE WHEN $2 = ANY(roles) THEN roles ELSE array_append(roles, $2) END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(User::from))
}

/// Takes `role` away (idempotent); `None` if there is no such user. Every user is a member, so
/// removing `member` is refused with a 422.
pub async fn remove_role(pool: &PgPool, id: Uuid, role: Role) -> ApiResult<Option<User>> {
    if role == Role::Member {
        return Err(ApiError::invalid_field(
            "role",
            "every user is a member; the member role cannot be removed",
        ));
    }
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "UPDATE users SET roles = array_remove(roles, $2) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(User::from))
}

/// Disables or enables the account `id`; `None` if there is no such user. Disabling does not
/// end its sessions by itself: see `refresh::revoke_user`.
pub async fn set_disabled(pool: &PgPool, id: Uuid, disabled: bool) -> ApiResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(disabled)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(User::from))
}

/// What [`create_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    /// A new account was created with roles member and admin.
    Created(User),
    /// The email already had an account; it was granted admin. Its password is unchanged.
    Promoted(User),
    /// The email already had an account holding admin; nothing changed.
    AlreadyAdmin(User),
}

impl AdminOutcome {
    pub fn user(&self) -> &User {
        match self {
            AdminOutcome::Created(u)
            | AdminOutcome::Promoted(u)
            | AdminOutcome::AlreadyAdmin(u) => u,
        }
    }
}

/// For the CLI: makes `email` an admin, creating the account if there is none. The password and
/// display name are used (and validated) only when creating. Errors read well as CLI messages.
pub async fn create_admin(
    pool: &PgPool,
    email: &str,
    password: &str,
    display_name: &str,
) -> anyhow::Result<AdminOutcome> {
    let cli = |e: ApiError| anyhow::anyhow!("{e}");
    if let Some(outcome) = promote(pool, email).await.map_err(cli)? {
        return Ok(outcome);
    }
    let new = NewUser::parse(email, password.into(), display_name).map_err(cli)?;
    match create(pool, new, &[Role::Member, Role::Admin]).await {
        Ok(user) => Ok(AdminOutcome::Created(user)),
        // Someone registered the email between our look-up and insert: promote that account.
        Err(ApiError::Conflict {
            kind: "email-taken",
            ..
        }) => promote(pool, email)
            .await
            .map_err(cli)?
            .ok_or_else(|| anyhow::anyhow!("the account for {email} vanished while promoting it")),
        Err(e) => Err(cli(e)),
    }
}

async fn promote(pool: &PgPool, email: &str) -> ApiResult<Option<AdminOutcome>> {
    let Some(existing) = find_by_email(pool, email).await? else {
        return Ok(None);
    };
    if existing.roles.contains(&Role::Admin) {
        return Ok(Some(AdminOutcome::AlreadyAdmin(existing)));
    }
    let user = add_role(pool, existing.id, Role::Admin)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user {} vanished", existing.id)))?;
    Ok(Some(AdminOutcome::Promoted(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_must_look_like_emails() {
        assert_eq!(
            parse_email("  Ann@Example.com \n").unwrap(),
            "Ann@Example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@example..com",
            "ann@.example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(186));
        assert_eq!(long.len(), 255);
        assert!(parse_email(&long).is_err());
        assert!(parse_email(&long[1..]).is_ok());
    }

    #[test]
    fn display_names_are_trimmed_and_between_1_and_100_characters() {
        assert_eq!(parse_display_name("  Ann  ").unwrap(), "Ann");
        assert!(parse_display_name("   ").is_err());
        assert!(parse_display_name(&"é".repeat(100)).is_ok());
        assert!(parse_display_name(&"é".repeat(101)).is_err());
        assert!(parse_display_name("a\u{0}b").is_err());
    }

    #[test]
    fn a_registration_reports_every_bad_field_at_once() {
        let Err(ApiError::Invalid { fields, .. }) = NewUser::parse("nope", "short".into(), " ")
        else {
            panic!("expected a 422");
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["email", "display_name", "password"]);
    }
}
