//! Who issued a command and why: recorded in every event's metadata so that an auditor can
//! follow any change back to a user, a request and the chain of causes behind it.

use bountyline_domain::Actor;
use std::collections::HashMap;

use super::Expected;
use crate::defects::{self, Defect};
use crate::store::delivery_keys;
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    pub request_id: String,
    /// The caller's own request id, kept apart from the server's (never a correlation).
    pub client_request_id: Option<String>,
    /// Shared by everything one request set off, including saga follow-ups.
    pub correlation_id: String,
    /// The event that led to this command, when a process manager or scheduler issued it.
    pub causation_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Set when an earlier try under the same Idempotency-Key ended without a trusted answer
    /// (its outcome unknown): the command first looks for what that try stored.
    pub resolve: bool,
    /// Tries a command gets against concurrency conflicts before its caller hears 409.
    pub tries_on_conflict: u32,
    /// The payment provider's delivery the command carries out, claimed with its events.
    pub delivery: Option<DeliveryClaim>,
    /// The version the sender expects the aggregate at (`If-Match`): the command is decided
    /// only on that version, and refused with the current one otherwise.
    pub expected: Option<Expected>,
}

/// A payment provider's delivery: its reference is one delivery's for good, and the claim on
/// it goes into the transaction that appends the command's events (see `store::group`), so
/// that carrying out a delivery costs one durable commit. A command whose reference turns out
/// claimed with another body loses like a concurrency conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    pub reference: String,
    /// The SHA-256 of the delivery's body, in lowercase hex.
    pub body_sha256: String,
    /// The provider's event name (`deposit.succeeded`, ...).
    pub event: String,
}

/// Tries against conflicts for a command a person (or the payment provider) waits for.
const TRIES_ON_CONFLICT: u32 = 4;
/// Tries for a process manager's follow-up: nobody waits on it, and one that gave up failed
/// its whole batch (under a held load a payer's wallet also takes the API's deposits, and each
/// failed batch cost the runner a backoff and a catch-up from the store).
const TRIES_FOR_FOLLOW_UPS: u32 = 80;

impl CommandContext {
    /// A command a person sent over HTTP: the request is its own correlation.
    pub fn http(actor: Actor, request_id: &str, idempotency_key: Option<String>) -> Self {
        Self {
            actor,
            request_id: request_id.to_owned(),
            client_request_id: None,
            correlation_id: request_id.to_owned(),
            causation_id: None,
            idempotency_key,
            resolve: false,
            tries_on_conflict: TRIES_ON_CONFLICT,
            delivery: None,
            expected: None,
        }
    }

    /// A command bountyline issued itself (a scheduler); `cause` names what triggered it.
    pub fn system(cause: &str) -> Self {
        // In time order, as the request ids the HTTP edge makes (migration 0019).
        let id = Uuid::now_v7().to_string();
        Self {
            actor: Actor::system(),
            request_id: id.clone(),
            client_request_id: None,
            correlation_id: id,
            causation_id: Some(cause.to_owned()),
            idempotency_key: None,
            resolve: false,
            tries_on_conflict: TRIES_ON_CONFLICT,
            delivery: None,
            expected: None,
        }
    }

    /// A command a process manager issues in reaction to `event`: same correlation as the
    /// request that started it all, caused by that event.
    pub fn follow_up(event: &bountyline_projections::StoredEvent) -> Self {
        let correlation = event
            .meta("correlation_id")
            .map(str::to_owned)
            .unwrap_or_else(|| event.event_id.to_string());
        Self {
            actor: Actor::system(),
            request_id: event.meta("request_id").unwrap_or_default().to_owned(),
            client_request_id: None,
            correlation_id: correlation,
            causation_id: Some(event.event_id.to_string()),
            idempotency_key: None,
            resolve: false,
            tries_on_conflict: TRIES_FOR_FOLLOW_UPS,
            delivery: None,
            expected: None,
        }
    }

    /// The id of something this command creates (`what`: "task", "bounty", ...). With an
    /// Idempotency-Key it derives from the actor and the key, so that every retry of the
    /// request names the same thing and the aggregate refuses or ignores a second creation by
    /// itself; without one it is new and in time order.
    pub fn mint(&self, what: &str) -> Uuid {
        let Some(key) = &self.idempotency_key else {
            return Uuid::now_v7();
        };
        if defects::on(Defect::ForgetUnknownOutcomes) {
            return Uuid::now_v7();
        }
        let digest = Sha256::new()
            .chain_update(b"bountyline/minted-id/v1\0")
            .chain_update(what.as_bytes())
            .chain_update([0])
            .chain_update(self.actor.user_id.as_bytes())
            .chain_update(key.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    pub(super) fn metadata(&self, command_id: Uuid, command: &str) -> HashMap<String, String> {
        let command_id = command_id.to_string();
        let mut m = HashMap::from([
            ("actor".to_owned(), self.actor.user_id.to_string()),
            ("request_id".to_owned(), self.request_id.clone()),
            ("correlation_id".to_owned(), self.correlation_id.clone()),
            (
                "causation_id".to_owned(),
                self.causation_id
                    .clone()
                    .unwrap_or_else(|| command_id.clone()),
            ),
            ("command".to_owned(), command.to_owned()),
            ("command_id".to_owned(), command_id),
        ]);
        if let Some(key) = &self.idempotency_key {
            m.insert("idempotency_key".to_owned(), key.clone());
        }
        if let Some(client) = &self.client_request_id {
            m.insert("client_request_id".to_owned(), client.clone());
        }
        if let Some(claim) = &self.delivery {
            m.insert(delivery_keys::REFERENCE.to_owned(), claim.reference.clone());
            m.insert(
                delivery_keys::BODY_SHA256.to_owned(),
                claim.body_sha256.clone(),
            );
            m.insert(delivery_keys::EVENT.to_owned(), claim.event.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(actor: Uuid, key: Option<&str>) -> CommandContext {
        CommandContext::http(Actor::new(actor, Vec::new()), "r", key.map(str::to_owned))
    }

    #[test]
    fn minted_ids_derive_from_the_actor_and_the_key() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let once = keyed(alice, Some("k1")).mint("task");
        assert_eq!(
            once,
            keyed(alice, Some("k1")).mint("task"),
            "a retry names the same"
        );
        assert_ne!(once, keyed(alice, Some("k2")).mint("task"), "another key");
        assert_ne!(once, keyed(bob, Some("k1")).mint("task"), "another actor");
        assert_ne!(
            once,
            keyed(alice, Some("k1")).mint("bounty"),
            "another kind of thing"
        );
        assert_ne!(
            keyed(alice, None).mint("task"),
            keyed(alice, None).mint("task"),
            "without a key every id is new"
        );
    }
}
