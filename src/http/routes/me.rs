//! `/v1/me` (the caller's own account) and the admin routes over accounts: grant and remove
//! roles, disable and enable an account, end all of its sessions.
//!
//! Every authenticated request reads the account's roles and state as they stand
//! (`auth::sessions`), so a change reaches every token of the user within
//! `auth.session_cache_ms` (1 s) on every API process, at once on this one. No admin changes
//! their own roles or account: another admin must (a demoted admin could otherwise grant the
//! role back with a token issued before the demotion).

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::Role;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::refresh;
use crate::auth::sessions::Sessions;
use crate::auth::users::{self, User};
use crate::auth::{require_role, Authenticated};
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::{IfNoneMatch, UserId};
use crate::http::openapi::problems::{
    Forbidden, Invalid, JsonBody, NotFound, NotModified, Unauthenticated,
};

pub fn config(cfg: &mut web::ServiceConfig) {
    // Resources, not a `/v1/admin` scope, which would hide other modules' admin routes.
    cfg.route("/v1/me", web::get().to(me))
        .route("/v1/admin/users/{id}/roles", web::post().to(grant_role))
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            web::delete().to(remove_role),
        )
        .route("/v1/admin/users/{id}/disable", web::post().to(disable))
        .route("/v1/admin/users/{id}/enable", web::post().to(enable))
        .route(
            "/v1/admin/users/{id}/sessions",
            web::delete().to(revoke_sessions),
        );
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GrantRole, example = json!({"role": "auditor"}))]
struct RoleRequest {
    /// `member`, `admin` or `auditor`.
    #[schema(schema_with = crate::http::openapi::values::role)]
    role: String,
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/v1/me", operation_id = "me", tag = "users",
    params(IfNoneMatch),
    responses((status = 200, description = "The caller", body = User), NotModified,
        Unauthenticated),
    security(("bearer" = [])),
)]
async fn me(
    pool: web::Data<PgPool>,
    req: HttpRequest,
    caller: Authenticated,
) -> ApiResult<HttpResponse> {
    let user = users::find_by_id(&pool, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".to_owned()))?;
    ETag::answer_by_content(&req, &user)
}

/// Grant a user a role (admin). It reaches the user's tokens at their next refresh.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/roles", operation_id = "grantRole", tag = "users",
    params(UserId),
    request_body = RoleRequest,
    responses((status = 200, description = "The user with the role", body = User),
        Unauthenticated, Forbidden, NotFound, JsonBody),
    security(("bearer" = [])),
)]
async fn grant_role(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<RoleRequest>,
) -> ApiResult<HttpResponse> {
    let id = another_user(&caller, *id)?;
    let role = parse_role(&body.role)?;
    let user = users::add_role(&pool, id, role).await?;
    sessions.forget_user(id);
    answer(user)
}

/// Remove a role from a user (admin); `member` cannot be removed.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/roles/{role}", operation_id = "removeRole",
    tag = "users",
    params(
        UserId,
        RemovableRole,
    ),
    responses((status = 200, description = "The user without the role", body = User),
        Unauthenticated, Forbidden, NotFound, Invalid),
    security(("bearer" = [])),
)]
async fn remove_role(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
    path: web::Path<(Uuid, String)>,
) -> ApiResult<HttpResponse> {
    let (id, role) = path.into_inner();
    let id = another_user(&caller, id)?;
    let role = parse_role(&role)?;
    let user = users::remove_role(&pool, id, role).await?;
    sessions.forget_user(id);
    answer(user)
}

/// Disable an account (admin): it can no longer sign in, and every session it has ends.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/disable", operation_id = "disableUser", tag = "users",
    params(UserId),
    responses((status = 200, description = "The user, disabled", body = User),
        Unauthenticated, Forbidden, NotFound),
    security(("bearer" = [])),
)]
async fn disable(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = another_user(&caller, *id)?;
    let user = users::set_disabled(&pool, id, true).await?;
    if user.is_some() {
        sessions.forget(&refresh::revoke_user(&pool, id).await?);
        sessions.forget_user(id);
    }
    answer(user)
}

/// Enable a disabled account again (admin); its owner signs in anew.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/enable", operation_id = "enableUser", tag = "users",
    params(UserId),
    responses((status = 200, description = "The user, enabled", body = User),
        Unauthenticated, Forbidden, NotFound),
    security(("bearer" = [])),
)]
async fn enable(
    pool: web::Data<PgPool>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = another_user(&caller, *id)?;
    answer(users::set_disabled(&pool, id, false).await?)
}

/// End every session of a user (admin): their tokens stop working on every device.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/sessions", operation_id = "revokeSessions",
    tag = "users",
    params(UserId),
    responses((status = 204, description = "Every session of the user ended"),
        Unauthenticated, Forbidden, NotFound),
    security(("bearer" = [])),
)]
async fn revoke_sessions(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    require_role(&caller, Role::Admin)?;
    let id = *id;
    if users::find_by_id(&pool, id).await?.is_none() {
        return Err(ApiError::NotFound("no such user".to_owned()));
    }
    sessions.forget(&refresh::revoke_user(&pool, id).await?);
    tracing::info!(user_id = %id, by = %caller.user_id, "sessions revoked by an admin");
    Ok(HttpResponse::NoContent().finish())
}

/// `id`, when the caller is an admin acting on another account: no one changes their own
/// roles or account state.
fn another_user(caller: &Authenticated, id: Uuid) -> ApiResult<Uuid> {
    require_role(caller, Role::Admin)?;
    if id == caller.user_id {
        return Err(ApiError::Forbidden(
            "an admin cannot change their own roles or account; another admin must".to_owned(),
        ));
    }
    Ok(id)
}

/// The `{role}` of a removal: every role but `member`, which every user keeps.
struct RemovableRole;

impl utoipa::IntoParams for RemovableRole {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        let removable = Role::ALL
            .into_iter()
            .filter(|r| *r != Role::Member)
            .map(Role::as_str);
        vec![ParameterBuilder::new()
            .name("role")
            .parameter_in(ParameterIn::Path)
            .required(utoipa::openapi::Required::True)
            .description(Some("The role to remove"))
            .schema(Some(crate::http::openapi::values::one_of(removable)))
            .build()]
    }
}

fn parse_role(raw: &str) -> ApiResult<Role> {
    Role::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::invalid_field("role", format!("must be one of {}", known.join(", ")))
    })
}

fn answer(user: Option<User>) -> ApiResult<HttpResponse> {
    let user = user.ok_or_else(|| ApiError::NotFound("no such user".to_owned()))?;
    tracing::info!(user_id = %user.id, roles = ?user.roles, disabled = user.disabled, "account changed");
    Ok(HttpResponse::Ok().json(user))
}
