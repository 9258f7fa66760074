//! Who hears of an event, and what their notification says: pure, so each rule is tested
//! without a database. Names that only the read side knows (a bounty's title, a task's
//! creator) are added by the apply step.

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::wallet::WalletEvent;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// One notification to write for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Notice {
    pub recipient: Uuid,
    pub kind: &'static str,
    /// What the notification is about: the bounty, the payment or the task.
    pub subject_id: Uuid,
    pub data: Map<String, Value>,
}

impl Notice {
    fn new(recipient: Uuid, kind: &'static str, subject_id: Uuid, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            recipient,
            kind,
            subject_id,
            data,
        }
    }
}

/// The notifications a bounty event makes; each carries `bounty_id`.
pub(super) fn of_bounty(bounty_id: Uuid, event: &BountyEvent) -> Vec<Notice> {
    let notice = |recipient: Uuid, kind: &'static str, mut data: Value| {
        data["bounty_id"] = json!(bounty_id);
        Notice::new(recipient, kind, bounty_id, data)
    };
    match event {
        BountyEvent::ApplicationSubmitted {
            application_id,
            hunter,
            poster,
            ..
        } => vec![notice(
            *poster,
            "application_received",
            json!({"application_id": application_id, "hunter": hunter}),
        )],
        BountyEvent::ApplicationAccepted {
            application_id,
            hunter,
            ..
        } => vec![notice(
            *hunter,
            "application_accepted",
            json!({"application_id": application_id}),
        )],
        BountyEvent::WorkSubmitted {
            hunter,
            poster,
            revision,
            ..
        } => vec![notice(
            *poster,
            "work_submitted",
            json!({"hunter": hunter, "revision": revision}),
        )],
        BountyEvent::WorkApproved { hunter, reward, .. } => {
            vec![notice(*hunter, "work_approved", json!({"reward": reward}))]
        }
        BountyEvent::WorkRejected { hunter, reason, .. } => {
            vec![notice(*hunter, "work_rejected", json!({"reason": reason}))]
        }
        BountyEvent::BountyDisputed {
            raised_by,
            poster,
            hunter,
            reason,
            ..
        } => {
            // The other party; both when someone else (an admin) raised it.
            let data = json!({"raised_by": raised_by, "reason": reason});
            [*poster, *hunter]
                .into_iter()
                .filter(|party| party != raised_by)
                .map(|party| notice(party, "bounty_disputed", data.clone()))
                .collect()
        }
        BountyEvent::DisputeResolved {
            outcome,
            poster,
            hunter,
            reward,
            ..
        } => {
            let data = json!({"outcome": outcome, "reward": reward});
            [*poster, *hunter]
                .into_iter()
                .map(|party| notice(party, "dispute_resolved", data.clone()))
                .collect()
        }
        BountyEvent::BountyUnfunded {
            poster,
            reward,
            reason,
            ..
        } => vec![notice(
            *poster,
            "bounty_unfunded",
            json!({"reward": reward, "reason": reason}),
        )],
        _ => vec![],
    }
}

/// The notifications a wallet event makes; each carries `payment_id`, `amount`, `currency`.
pub(super) fn of_wallet(event: &WalletEvent) -> Vec<Notice> {
    match event {
        WalletEvent::PaymentReceived {
            owner,
            payment_id,
            from,
            currency,
            amount,
            ..
        } => vec![Notice::new(
            *owner,
            "paid",
            *payment_id,
            json!({"payment_id": payment_id, "from": from, "amount": amount, "currency": currency}),
        )],
        WalletEvent::HoldRefunded {
            owner,
            payment_id,
            currency,
            amount,
            ..
        } => vec![Notice::new(
            *owner,
            "refunded",
            *payment_id,
            json!({"payment_id": payment_id, "amount": amount, "currency": currency}),
        )],
        _ => vec![],
    }
}

/// A task's dead-letter notification for its creator.
pub(super) fn task_dead_lettered(
    creator: Uuid,
    task_id: Uuid,
    title: &str,
    queue: &str,
    attempt: u32,
    error: &str,
) -> Notice {
    Notice::new(
        creator,
        "task_dead_lettered",
        task_id,
        json!({
            "task_id": task_id,
            "title": title,
            "queue": queue,
            "attempt": attempt,
            "error": error,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bountyline_domain::bounty::DisputeOutcome;
    use bountyline_domain::money::{Currency, Money};
    use chrono::{TimeZone, Utc};

    const BOUNTY: Uuid = Uuid::from_u128(10);
    const POSTER: Uuid = Uuid::from_u128(1);
    const HUNTER: Uuid = Uuid::from_u128(2);
    const ADMIN: Uuid = Uuid::from_u128(3);

    fn reward() -> Money {
        let usd = Currency::parse("USD").expect("USD");
        Money::positive(500, usd).expect("money")
    }

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .expect("a time")
    }

    fn recipients(notices: &[Notice]) -> Vec<(Uuid, &'static str)> {
        notices.iter().map(|n| (n.recipient, n.kind)).collect()
    }

    #[test]
    fn an_application_tells_the_poster_without_the_pitch() {
        let notices = of_bounty(
            BOUNTY,
            &BountyEvent::ApplicationSubmitted {
                application_id: Uuid::from_u128(7),
                hunter: HUNTER,
                poster: POSTER,
                pitch: "hire me".into(),
                at: at(),
            },
        );
        assert_eq!(recipients(&notices), vec![(POSTER, "application_received")]);
        assert_eq!(notices[0].data["bounty_id"], json!(BOUNTY));
        assert_eq!(notices[0].subject_id, BOUNTY);
        assert!(!notices[0].data.contains_key("pitch"));
    }

    #[test]
    fn a_rejection_tells_the_hunter_why() {
        let notices = of_bounty(
            BOUNTY,
            &BountyEvent::WorkRejected {
                hunter: HUNTER,
                poster: POSTER,
                reason: "tests fail".into(),
                at: at(),
            },
        );
        assert_eq!(recipients(&notices), vec![(HUNTER, "work_rejected")]);
        assert_eq!(notices[0].data["reason"], "tests fail");
    }

    #[test]
    fn a_dispute_tells_the_other_party_or_both_when_an_admin_raised_it() {
        let disputed = |raised_by| BountyEvent::BountyDisputed {
            raised_by,
            poster: POSTER,
            hunter: HUNTER,
            reason: "no".into(),
            previous_status: bountyline_domain::bounty::BountyStatus::Submitted,
            at: at(),
        };
        let to = |raised_by| recipients(&of_bounty(BOUNTY, &disputed(raised_by)));
        assert_eq!(to(POSTER), vec![(HUNTER, "bounty_disputed")]);
        assert_eq!(to(HUNTER), vec![(POSTER, "bounty_disputed")]);
        assert_eq!(
            to(ADMIN),
            vec![(POSTER, "bounty_disputed"), (HUNTER, "bounty_disputed")]
        );
    }

    #[test]
    fn a_resolution_tells_both_parties() {
        let notices = of_bounty(
            BOUNTY,
            &BountyEvent::DisputeResolved {
                outcome: DisputeOutcome::PayHunter,
                resolved_by: ADMIN,
                poster: POSTER,
                hunter: HUNTER,
                payment_id: Uuid::from_u128(99),
                reward: reward(),
                at: at(),
            },
        );
        assert_eq!(
            recipients(&notices),
            vec![(POSTER, "dispute_resolved"), (HUNTER, "dispute_resolved")]
        );
        assert_eq!(notices[0].data["outcome"], "pay_hunter");
        assert_eq!(
            notices[0].data["reward"],
            json!({"amount": 500, "currency": "USD"})
        );
    }

    #[test]
    fn bookkeeping_events_tell_nobody() {
        let opened = BountyEvent::BountyOpened {
            poster: POSTER,
            payment_id: Uuid::from_u128(99),
            reward: reward(),
            at: at(),
        };
        assert!(of_bounty(BOUNTY, &opened).is_empty());
    }

    #[test]
    fn a_received_payment_tells_the_payee_how_much() {
        let usd = Currency::parse("USD").expect("USD");
        let notices = of_wallet(&WalletEvent::PaymentReceived {
            owner: HUNTER,
            payment_id: Uuid::from_u128(99),
            from: POSTER,
            currency: usd,
            amount: 500,
            available: 500,
            held: 0,
            at: at(),
        });
        assert_eq!(recipients(&notices), vec![(HUNTER, "paid")]);
        assert_eq!(notices[0].data["amount"], 500);
        assert_eq!(notices[0].data["currency"], "USD");
        assert!(!notices[0].data.contains_key("available"));
    }
}
