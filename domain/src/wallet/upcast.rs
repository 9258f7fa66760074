//! The wallet events' older stored forms, brought up to date one version at a time (the
//! steps are registered in [`crate::upcast::STEPS`]).

use crate::upcast::Body;
use serde_json::Value;

/// `WalletCredited` v1 → v2. Credits were written without an id until credits became
/// idempotent (commit 15c3d80, migration 0021); from then on v1 wrote `credit_id` when it had
/// one and left it out when not. v2 always writes it, `null` for a credit that has none, so
/// a v2 event without it is a fault rather than silently a credit without an id.
pub(crate) fn credited_v1_to_v2(mut body: Body) -> Result<Body, String> {
    match body.get("credit_id") {
        None => {
            body.insert("credit_id".to_owned(), Value::Null);
        }
        Some(Value::String(_) | Value::Null) => {}
        Some(other) => return Err(format!("credit_id is {other}, not an id")),
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use crate::upcast::upcast;
    use crate::wallet::WalletEvent;
    use crate::Currency;
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use uuid::Uuid;

    fn credited(credit_id: Option<Uuid>) -> WalletEvent {
        WalletEvent::WalletCredited {
            owner: Uuid::from_u128(1),
            credit_id,
            currency: Currency::parse("USD").unwrap(),
            amount: 500,
            reason: "goodwill".into(),
            credited_by: Uuid::from_u128(2),
            available: 1500,
            held: 0,
            at: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        }
    }

    fn v1_body() -> serde_json::Value {
        json!({
            "owner": Uuid::from_u128(1),
            "currency": "USD",
            "amount": 500,
            "reason": "goodwill",
            "credited_by": Uuid::from_u128(2),
            "available": 1500,
            "held": 0,
            "at": "2026-11-01T12:00:00Z",
        })
    }

    #[test]
    fn a_credit_stored_before_credits_had_ids_reads_as_one_without_an_id() {
        let stored = json!({"WalletCredited": v1_body()});
        let current = upcast("WalletCredited", "1", &stored).unwrap();
        let read: WalletEvent = serde_json::from_value(current.into_owned()).unwrap();
        assert_eq!(read, credited(None));
    }

    #[test]
    fn a_v1_credit_that_named_its_id_keeps_it() {
        let id = Uuid::from_u128(3);
        let mut body = v1_body();
        body["credit_id"] = json!(id);
        let stored = json!({ "WalletCredited": body });
        let current = upcast("WalletCredited", "1", &stored).unwrap();
        let read: WalletEvent = serde_json::from_value(current.into_owned()).unwrap();
        assert_eq!(read, credited(Some(id)));
    }

    #[test]
    fn a_v2_credit_without_its_id_is_refused_rather_than_read_as_one_without() {
        let stored = json!({"WalletCredited": v1_body()});
        let current = upcast("WalletCredited", "2", &stored).unwrap();
        assert!(serde_json::from_value::<WalletEvent>(current.into_owned()).is_err());
        let mut wrong = v1_body();
        wrong["credit_id"] = json!(42);
        assert!(upcast("WalletCredited", "1", &json!({ "WalletCredited": wrong })).is_err());
    }
}
