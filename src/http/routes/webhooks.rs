//! `POST /v1/webhooks/payments`: the payment provider confirms deposits and settles
//! withdrawals. The body must be signed (`X-Signature: sha256=<hex HMAC-SHA256 of the raw
//! body>`); unsigned or badly signed calls get 401 and change nothing. Deliveries are
//! idempotent on the provider's `reference`: a repeat gets 200 and changes nothing, and a
//! reference reused with a different body is refused.

use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::values::ProviderReference;
use bountyline_domain::wallet::WalletCommand;
use chrono::Utc;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::commands::{CommandContext, CommandError, DeliveryClaim};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::request_id;
use crate::http::openapi::problems::{
    Conflict, Forbidden, NotFound, OutcomeUnknown, RawJsonBody, Unauthenticated,
};
use crate::http::signature;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhooks/payments", web::post().to(payments));
}

/// What the payment provider reports.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentEvent, example = json!({"event": "deposit.succeeded",
    "reference": "dep_8f2k1", "user_id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd",
    "amount": 10000, "currency": "USD"}))]
struct Delivery {
    /// `deposit.succeeded`, `withdrawal.succeeded` or `withdrawal.failed`.
    event: String,
    /// The provider's id of the money movement; deliveries are idempotent on it.
    #[schema(schema_with = crate::http::openapi::values::provider_reference)]
    reference: String,
    user_id: Uuid,
    /// In minor units.
    #[schema(minimum = 1, maximum = 1e12)]
    #[serde(deserialize_with = "crate::http::whole::number")]
    amount: i64,
    #[schema(schema_with = crate::http::openapi::values::currency)]
    currency: String,
    /// Required for withdrawal events: the `withdrawal_id` the withdrawal was answered with.
    withdrawal_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct Delivered {
    /// `processed`, or `duplicate` for a delivery already processed (nothing changed).
    #[schema(example = "processed")]
    status: &'static str,
    /// The wallet's id, its version and the position of the delivery's event, as the delivery
    /// was first processed (a `duplicate` names them too, unless it was first processed before
    /// deliveries were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    wallet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<i64>,
}

/// The payment provider's callback: confirms deposits and settles withdrawals.
///
/// Signed with `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`; unsigned or badly
/// signed calls get 401 and change nothing. A repeat of a processed delivery answers 200
/// `duplicate` with where the first one landed; a reference reused with another body answers
/// 409 `reference-reused`. A 503 `outcome-unknown` means the delivery may have been carried
/// out: send it again.
#[utoipa::path(
    post, path = "/v1/webhooks/payments", operation_id = "paymentWebhook", tag = "webhooks",
    request_body = Delivery,
    responses((status = 200, description = "Processed, or already processed",
        body = Delivered), RawJsonBody, Unauthenticated, Forbidden, NotFound, Conflict,
        OutcomeUnknown),
    security(("webhook_signature" = [])),
)]
async fn payments(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let secret = state
        .settings
        .payments
        .webhook_secret
        .expose_secret()
        .as_bytes();
    let header = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(secret, &body, header) {
        tracing::warn!(request_id = %request_id(&req), reason = %e, "webhook refused");
        metrics::counter!("bountyline_webhooks_total", "outcome" => "unauthenticated").increment(1);
        return Err(ApiError::Unauthenticated(format!("webhook signature: {e}")));
    }
    let delivery: Delivery = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid {
                detail: e.to_string(),
                fields: Vec::new(),
            }
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })?;
    let reference = ProviderReference::parse(&delivery.reference)?;
    let money = Money::positive(delivery.amount, Currency::parse(&delivery.currency)?)?;
    let owner = delivery.user_id;
    let command = match delivery.event.as_str() {
        "deposit.succeeded" => WalletCommand::Deposit {
            owner,
            reference: reference.clone(),
            money,
            at: Utc::now(),
        },
        "withdrawal.succeeded" | "withdrawal.failed" => {
            let withdrawal_id = delivery.withdrawal_id.ok_or_else(|| {
                ApiError::invalid_field("withdrawal_id", "is required for withdrawal events")
            })?;
            if delivery.event == "withdrawal.succeeded" {
                WalletCommand::CompleteWithdrawal {
                    withdrawal_id,
                    reference: reference.clone(),
                    at: Utc::now(),
                }
            } else {
                WalletCommand::FailWithdrawal {
                    withdrawal_id,
                    reference: reference.clone(),
                    at: Utc::now(),
                }
            }
        }
        other => {
            return Err(ApiError::invalid_field(
                "event",
                format!(
                "{other} is not one of deposit.succeeded, withdrawal.succeeded, withdrawal.failed"
            ),
            ))
        }
    };
    let claim = DeliveryClaim {
        reference: reference.as_str().to_owned(),
        body_sha256: signature::to_hex(&Sha256::digest(&body)),
        event: delivery.event.clone(),
    };
    check_claim(&state.pool, owner, &claim).await?;
    // The wallet is idempotent on the reference: a delivery already carried out (or one that
    // died half way and is run again) appends nothing the second time. Otherwise its events
    // and the claim on its reference commit together.
    let mut ctx = CommandContext::system(&format!("webhook:{}", reference.as_str()));
    ctx.request_id = request_id(&req);
    ctx.delivery = Some(claim.clone());
    // The delivery (its reference and body) is the provider's idempotency key: the store
    // records the delivery's command under it, so a repeat (the provider retrying after a lost
    // answer) is told where the first one landed. A reference reused with another body is
    // another key, refused by its claim.
    ctx.idempotency_key = Some(format!(
        "delivery:{}:{}",
        claim.reference, claim.body_sha256
    ));
    let committed = match state.commands.wallet(owner, command, &ctx).await {
        // Lost to a delivery of the same reference with another body, for another wallet,
        // that committed first: answered as that, not as a retryable conflict.
        Err(conflict @ CommandError::Conflict(_)) => {
            check_claim(&state.pool, owner, &claim).await?;
            return Err(conflict.into());
        }
        result => result?,
    };
    if !committed.appended || committed.replayed {
        metrics::counter!("bountyline_webhooks_total", "outcome" => "duplicate").increment(1);
        // Where the first delivery landed (deliveries from before records were kept have none).
        let first = match committed.replayed {
            true => Some(committed),
            false => state.commands.recorded(&ctx).await?,
        };
        return Ok(HttpResponse::Ok().json(Delivered {
            status: "duplicate",
            wallet: first.as_ref().map(|c| c.id.clone()),
            version: first.as_ref().map(|c| c.version),
            position: first.as_ref().map(|c| c.position),
        }));
    }
    metrics::counter!("bountyline_webhooks_total", "outcome" => "processed").increment(1);
    Ok(HttpResponse::Ok().json(Delivered {
        status: "processed",
        wallet: Some(committed.id),
        version: Some(committed.version),
        position: Some(committed.position),
    }))
}

/// Refuses a delivery for a user bountyline does not know, and one whose reference is claimed
/// with another body. Reads only: the claim itself commits with the delivery's events (see
/// `store::group`), and a claim that lands in between makes the command lose as a conflict.
async fn check_claim(pool: &PgPool, owner: Uuid, claim: &DeliveryClaim) -> ApiResult<()> {
    let (known, claimed): (bool, Option<String>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), \
                (SELECT encode(body_hash, 'hex') FROM webhook_deliveries WHERE reference = $2)",
    )
    .bind(owner)
    .bind(&claim.reference)
    .fetch_one(pool)
    .await?;
    if !known {
        return Err(ApiError::invalid_field("user_id", "no such user"));
    }
    match claimed {
        Some(body) if body != claim.body_sha256 => Err(ApiError::Conflict {
            kind: "reference-reused",
            detail: "this reference was already delivered with a different body".into(),
        }),
        _ => Ok(()),
    }
}
