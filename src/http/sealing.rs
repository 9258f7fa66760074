//! The edge's side of sealed texts (ADR 7): handlers seal what a person wrote once it is
//! validated ([`AppState::sealer`]), and every answer that can carry texts is opened on its
//! way out ([`opened`], [`answer_opened`]). A route that forgot to open shows sealed strings:
//! ciphertext, never plaintext.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use super::conditional::ETag;
use super::error::{ApiError, ApiResult};
use crate::privacy::{PrivacyError, Scope, Sealer};
use crate::state::AppState;

impl From<PrivacyError> for ApiError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::Erased(_) => ApiError::Forbidden("this account was erased".into()),
            PrivacyError::Db(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl AppState {
    /// Seals texts written by `author`, whose data key is made now if they have none.
    pub async fn sealer(&self, author: Uuid) -> ApiResult<Sealer> {
        Ok(self.privacy.keyring().sealer(author).await?)
    }
}

/// `answer` as JSON with every sealed text in it opened.
pub async fn opened(
    state: &AppState,
    answer: &impl Serialize,
    scope: Scope,
) -> ApiResult<serde_json::Value> {
    Ok(state.privacy.to_json(answer, scope).await?)
}

/// `body` under `tag`, opened; a 304 (nothing opened) when the client holds it already.
pub async fn answer_opened(
    state: &AppState,
    req: &HttpRequest,
    tag: &ETag,
    body: &impl Serialize,
    scope: Scope,
) -> ApiResult<HttpResponse> {
    if let Some(unchanged) = tag.unchanged(req) {
        return Ok(unchanged);
    }
    Ok(tag.ok().json(opened(state, body, scope).await?))
}
