//! `/v1/me` (the caller's own account) and the admin routes that grant and remove roles.
//!
//! A role change is stored at once but reaches the user's access tokens only at their next
//! refresh, which re-reads roles; access tokens are short-lived for this reason.

use actix_web::{web, HttpResponse};
use bountyline_domain::Role;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::users::{self, User};
use crate::auth::{require_role, Authenticated};
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::UserId;
use crate::http::openapi::problems::{Forbidden, Invalid, JsonBody, NotFound, Unauthenticated};

pub fn config(cfg: &mut web::ServiceConfig) {
    // Resources, not a `/v1/admin` scope, which would hide other modules' admin routes.
    cfg.route("/v1/me", web::get().to(me))
        .route("/v1/admin/users/{id}/roles", web::post().to(grant_role))
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            web::delete().to(remove_role),
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
    responses((status = 200, description = "The caller", body = User), Unauthenticated),
    security(("bearer" = [])),
)]
async fn me(pool: web::Data<PgPool>, caller: Authenticated) -> ApiResult<HttpResponse> {
    let user = users::find_by_id(&pool, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".to_owned()))?;
    Ok(HttpResponse::Ok().json(user))
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
    caller: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<RoleRequest>,
) -> ApiResult<HttpResponse> {
    require_role(&caller, Role::Admin)?;
    let role = parse_role(&body.role)?;
    let user = users::add_role(&pool, id.into_inner(), role).await?;
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
    caller: Authenticated,
    path: web::Path<(Uuid, String)>,
) -> ApiResult<HttpResponse> {
    require_role(&caller, Role::Admin)?;
    let (id, role) = path.into_inner();
    let role = parse_role(&role)?;
    let user = users::remove_role(&pool, id, role).await?;
    answer(user)
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
    tracing::info!(user_id = %user.id, roles = ?user.roles, "roles changed");
    Ok(HttpResponse::Ok().json(user))
}
