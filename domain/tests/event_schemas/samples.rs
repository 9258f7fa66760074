//! One fixed sample of every event type, each written out field by field: a struct variant
//! literal names every field, so a field added to an event does not compile until its sample
//! gives it a value (and the golden test then shows the changed form). Optional fields are
//! `Some`, so that the form of what they hold is pinned too, and enums inside events vary
//! between samples where they can.

use bountyline_domain::bounty::{BountyEvent, BountyStatus, DisputeOutcome};
use bountyline_domain::epoch::{EpochEvent, Reseal};
use bountyline_domain::inbox::InboxEvent;
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::person::PersonEvent;
use bountyline_domain::task::{FailureOutcome, TaskEvent, TaskStatus};
use bountyline_domain::wallet::{HoldRejection, WalletEvent};
use bountyline_domain::{Currency, Money};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, minute, 0).unwrap()
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn reward() -> Money {
    Money::positive(25_000, usd()).unwrap()
}

pub fn task_events() -> Vec<TaskEvent> {
    vec![
        TaskEvent::TaskCreated {
            queue: "render".into(),
            title: "Render the frames".into(),
            description: "Frames 1 to 240".into(),
            priority: 7,
            payload: Some(json!({"frames": [1, 240], "codec": "av1"})),
            max_attempts: 3,
            bounty_id: Some(id(40)),
            creator: id(1),
            created_at: at(0),
        },
        TaskEvent::TaskClaimed {
            queue: "render".into(),
            worker: id(2),
            lease_id: id(10),
            attempt: 1,
            lease_seconds: 60,
            lease_expires_at: at(2),
            claimed_at: at(1),
        },
        TaskEvent::TaskHeartbeatRecorded {
            worker: id(2),
            progress: Some(40),
            note: Some("frame 96".into()),
            lease_expires_at: at(3),
            at: at(2),
        },
        TaskEvent::TaskCompleted {
            queue: "render".into(),
            worker: id(2),
            result: Some(json!({"url": "https://example.com/out.mkv"})),
            completed_at: at(4),
        },
        TaskEvent::TaskFailed {
            queue: "render".into(),
            worker: id(2),
            error: "out of memory".into(),
            attempt: 1,
            outcome: FailureOutcome::Requeued,
            failed_at: at(5),
        },
        TaskEvent::TaskLeaseExpired {
            queue: "render".into(),
            worker: id(3),
            lease_id: id(11),
            attempt: 3,
            outcome: FailureOutcome::DeadLettered,
            expired_at: at(6),
        },
        TaskEvent::TaskCancelled {
            queue: "render".into(),
            cancelled_by: id(1),
            previous_status: TaskStatus::Queued,
            cancelled_at: at(7),
        },
    ]
}

pub fn bounty_events() -> Vec<BountyEvent> {
    let (poster, hunter, payment_id) = (id(1), id(2), id(30));
    vec![
        BountyEvent::BountyPosted {
            poster,
            payment_id,
            title: "Fix the flaky test".into(),
            description: "It fails one run in fifty".into(),
            reward: reward(),
            deadline: Some(at(59)),
            tags: vec!["rust".into(), "ci".into()],
            at: at(0),
        },
        BountyEvent::BountyOpened {
            poster,
            payment_id,
            reward: reward(),
            at: at(1),
        },
        BountyEvent::BountyUnfunded {
            poster,
            payment_id,
            reward: reward(),
            reason: "insufficient funds".into(),
            at: at(1),
        },
        BountyEvent::BountyFundedAfterCancel {
            poster,
            payment_id,
            reward: reward(),
            at: at(2),
        },
        BountyEvent::ApplicationSubmitted {
            application_id: id(20),
            hunter,
            poster,
            pitch: "I have fixed this kind before".into(),
            at: at(3),
        },
        BountyEvent::ApplicationWithdrawn {
            application_id: id(21),
            hunter: id(3),
            poster,
            at: at(4),
        },
        BountyEvent::ApplicationAccepted {
            application_id: id(20),
            hunter,
            poster,
            at: at(5),
        },
        BountyEvent::WorkSubmitted {
            hunter,
            poster,
            text: Some("The race is gone".into()),
            link: Some("https://example.com/pr/7".into()),
            revision: 2,
            at: at(6),
        },
        BountyEvent::WorkApproved {
            hunter,
            poster,
            payment_id,
            reward: reward(),
            at: at(7),
        },
        BountyEvent::WorkRejected {
            hunter,
            poster,
            reason: "still flaky".into(),
            at: at(8),
        },
        BountyEvent::BountyCancelled {
            poster,
            cancelled_by: id(9),
            hunter: Some(hunter),
            payment_id,
            reward: reward(),
            previous_status: BountyStatus::Assigned,
            refund: true,
            at: at(9),
        },
        BountyEvent::BountyDisputed {
            raised_by: hunter,
            poster,
            hunter,
            reason: "the work was done".into(),
            previous_status: BountyStatus::Submitted,
            at: at(10),
        },
        BountyEvent::DisputeResolved {
            outcome: DisputeOutcome::PayHunter,
            resolved_by: id(9),
            poster,
            hunter,
            payment_id,
            reward: reward(),
            at: at(11),
        },
        BountyEvent::BountyExpired {
            poster,
            payment_id,
            reward: reward(),
            at: at(12),
        },
        BountyEvent::BountyPaid {
            hunter,
            poster,
            payment_id,
            reward: reward(),
            at: at(13),
        },
        BountyEvent::BountyRefunded {
            poster,
            payment_id,
            reward: reward(),
            at: at(14),
        },
    ]
}

pub fn payment_events() -> Vec<PaymentEvent> {
    let (payer, payee, bounty_id) = (id(1), id(2), id(40));
    let (currency, amount) = (usd(), 25_000);
    vec![
        PaymentEvent::PaymentRequested {
            payer,
            bounty_id,
            currency,
            amount,
            at: at(0),
        },
        PaymentEvent::PaymentHeld {
            payer,
            bounty_id,
            currency,
            amount,
            at: at(1),
        },
        PaymentEvent::PaymentHoldFailed {
            payer,
            bounty_id,
            currency,
            amount,
            reason: "insufficient_funds".into(),
            at: at(1),
        },
        PaymentEvent::ReleaseRequested {
            payer,
            payee,
            bounty_id,
            currency,
            amount,
            at: at(2),
        },
        PaymentEvent::RefundRequested {
            payer,
            bounty_id,
            currency,
            amount,
            reason: "bounty cancelled".into(),
            at: at(2),
        },
        PaymentEvent::PaymentReleased {
            payer,
            payee,
            bounty_id,
            currency,
            amount,
            at: at(3),
        },
        PaymentEvent::PaymentRefunded {
            payer,
            bounty_id,
            currency,
            amount,
            at: at(3),
        },
    ]
}

pub fn wallet_events() -> Vec<WalletEvent> {
    let (owner, currency) = (id(1), usd());
    vec![
        WalletEvent::DepositConfirmed {
            owner,
            reference: "dep_0001".into(),
            currency,
            amount: 100_000,
            available: 100_000,
            held: 0,
            at: at(0),
        },
        WalletEvent::WalletCredited {
            owner,
            credit_id: Some(id(50)),
            currency,
            amount: 500,
            reason: "goodwill".into(),
            credited_by: id(9),
            available: 100_500,
            held: 0,
            at: at(1),
        },
        WalletEvent::WithdrawalRequested {
            owner,
            withdrawal_id: id(60),
            currency,
            amount: 10_000,
            available: 90_500,
            held: 10_000,
            at: at(2),
        },
        WalletEvent::WithdrawalCompleted {
            owner,
            withdrawal_id: id(60),
            reference: "wd_0001".into(),
            currency,
            amount: 10_000,
            available: 90_500,
            held: 0,
            at: at(3),
        },
        WalletEvent::WithdrawalFailed {
            owner,
            withdrawal_id: id(61),
            reference: "wd_0002".into(),
            currency,
            amount: 5_000,
            available: 90_500,
            held: 0,
            at: at(4),
        },
        WalletEvent::FundsHeld {
            owner,
            payment_id: id(30),
            currency,
            amount: 25_000,
            available: 65_500,
            held: 25_000,
            at: at(5),
        },
        WalletEvent::HoldRejected {
            owner,
            payment_id: id(31),
            currency,
            amount: 1_000_000,
            reason: HoldRejection::InsufficientFunds,
            available: 65_500,
            held: 25_000,
            at: at(6),
        },
        WalletEvent::HoldReleased {
            owner,
            payment_id: id(30),
            currency,
            amount: 25_000,
            available: 65_500,
            held: 0,
            at: at(7),
        },
        WalletEvent::HoldRefunded {
            owner,
            payment_id: id(32),
            currency,
            amount: 2_000,
            available: 67_500,
            held: 0,
            at: at(8),
        },
        WalletEvent::PaymentReceived {
            owner: id(2),
            payment_id: id(30),
            from: owner,
            currency,
            amount: 25_000,
            available: 25_000,
            held: 0,
            at: at(9),
        },
    ]
}

pub fn inbox_events() -> Vec<InboxEvent> {
    vec![InboxEvent::NotificationsRead {
        owner: id(1),
        notification_ids: vec![id(70), id(71)],
        at: at(0),
    }]
}

pub fn person_events() -> Vec<PersonEvent> {
    vec![PersonEvent::PersonErased {
        person: id(1),
        by: id(9),
        at: at(0),
    }]
}

pub fn epoch_events() -> Vec<EpochEvent> {
    vec![EpochEvent::ChainResealed(Reseal {
        epoch: id(80),
        texts: 5,
        events: 3,
        streams: 2,
        links: 4,
        links_digest: "5e".repeat(32),
        at: at(0),
    })]
}
