//! Given/when/then: one test per rule of a wallet.

use super::*;
use crate::values::{ProviderReference, Reason};
use crate::{Actor, Role};
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type WalletTest = TestFramework<Wallet>;

/// One wallet's history held in memory: the events given.
struct GivenHistory(Vec<WalletEvent>);

impl WalletHistory for GivenHistory {
    fn events_under<'a>(
        &'a self,
        _wallet: Uuid,
        key: &'a EntryKey,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WalletEvent>, HistoryError>> + Send + 'a>> {
        let events = self
            .0
            .iter()
            .filter(|event| event.entry_key().as_ref() == Some(key))
            .cloned()
            .collect();
        Box::pin(std::future::ready(Ok(events)))
    }
}

/// A wallet with `events` in its history: the aggregate folds them, and its keyed history
/// reads them (`GivenHistory`).
fn given(events: Vec<WalletEvent>) -> cqrs_es::test::AggregateTestExecutor<Wallet> {
    WalletTest::with(Arc::new(GivenHistory(events.clone()))).given(events)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

const OWNER: Uuid = Uuid::from_u128(1);
const PAYER: Uuid = Uuid::from_u128(9);
const WITHDRAWAL: Uuid = Uuid::from_u128(100);
const PAYMENT: Uuid = Uuid::from_u128(200);

fn owner() -> Actor {
    Actor::new(OWNER, vec![Role::Member])
}

fn admin() -> Actor {
    Actor::new(Uuid::from_u128(4), vec![Role::Admin])
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn dollars(cents: i64) -> Money {
    Money::positive(cents, usd()).unwrap()
}

fn reference(raw: &str) -> ProviderReference {
    ProviderReference::parse(raw).unwrap()
}

fn deposit(raw_reference: &str, money: Money) -> WalletCommand {
    WalletCommand::Deposit {
        owner: OWNER,
        reference: reference(raw_reference),
        money,
        at: t0(),
    }
}

fn deposited(raw_reference: &str, amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::DepositConfirmed {
        owner: OWNER,
        reference: raw_reference.into(),
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn request_withdrawal(cents: i64) -> WalletCommand {
    WalletCommand::RequestWithdrawal {
        owner: OWNER,
        withdrawal_id: WITHDRAWAL,
        money: dollars(cents),
        actor: owner(),
        at: t0(),
    }
}

fn withdrawal_requested(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::WithdrawalRequested {
        owner: OWNER,
        withdrawal_id: WITHDRAWAL,
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn complete_withdrawal() -> WalletCommand {
    WalletCommand::CompleteWithdrawal {
        withdrawal_id: WITHDRAWAL,
        reference: reference("po_1"),
        at: t0(),
    }
}

fn withdrawal_completed(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::WithdrawalCompleted {
        owner: OWNER,
        withdrawal_id: WITHDRAWAL,
        reference: "po_1".into(),
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn fail_withdrawal() -> WalletCommand {
    WalletCommand::FailWithdrawal {
        withdrawal_id: WITHDRAWAL,
        reference: reference("po_1"),
        at: t0(),
    }
}

fn withdrawal_failed(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::WithdrawalFailed {
        owner: OWNER,
        withdrawal_id: WITHDRAWAL,
        reference: "po_1".into(),
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn hold(cents: i64) -> WalletCommand {
    WalletCommand::HoldFunds {
        owner: OWNER,
        payment_id: PAYMENT,
        money: dollars(cents),
        at: t0(),
    }
}

fn funds_held(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::FundsHeld {
        owner: OWNER,
        payment_id: PAYMENT,
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn hold_rejected(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::HoldRejected {
        owner: OWNER,
        payment_id: PAYMENT,
        currency: usd(),
        amount,
        reason: HoldRejection::InsufficientFunds,
        available,
        held,
        at: t0(),
    }
}

fn release() -> WalletCommand {
    WalletCommand::ReleaseHold {
        payment_id: PAYMENT,
        at: t0(),
    }
}

fn refund() -> WalletCommand {
    WalletCommand::RefundHold {
        payment_id: PAYMENT,
        at: t0(),
    }
}

fn hold_released(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::HoldReleased {
        owner: OWNER,
        payment_id: PAYMENT,
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn hold_refunded(amount: i64, available: i64, held: i64) -> WalletEvent {
    WalletEvent::HoldRefunded {
        owner: OWNER,
        payment_id: PAYMENT,
        currency: usd(),
        amount,
        available,
        held,
        at: t0(),
    }
}

fn receive(money: Money, from: Uuid) -> WalletCommand {
    WalletCommand::ReceivePayment {
        owner: OWNER,
        payment_id: PAYMENT,
        money,
        from,
        at: t0(),
    }
}

fn received(amount: i64, available: i64) -> WalletEvent {
    WalletEvent::PaymentReceived {
        owner: OWNER,
        payment_id: PAYMENT,
        from: PAYER,
        currency: usd(),
        amount,
        available,
        held: 0,
        at: t0(),
    }
}

/// A wallet with $10.00 available.
fn funded() -> Vec<WalletEvent> {
    vec![deposited("dep_1", 1000, 1000, 0)]
}

/// $10.00 deposited, then $3.00 held for [`PAYMENT`].
fn with_hold() -> Vec<WalletEvent> {
    vec![deposited("dep_1", 1000, 1000, 0), funds_held(300, 700, 300)]
}

/// $10.00 deposited, then $4.00 reserved for [`WITHDRAWAL`].
fn with_withdrawal() -> Vec<WalletEvent> {
    vec![
        deposited("dep_1", 1000, 1000, 0),
        withdrawal_requested(400, 600, 400),
    ]
}

// Deposits and credits

#[test]
fn a_confirmed_deposit_opens_the_wallet_and_credits_available() {
    given(vec![])
        .when(deposit("dep_1", dollars(1250)))
        .then_expect_events(vec![deposited("dep_1", 1250, 1250, 0)]);
}

#[test]
fn deposits_add_to_the_balance_and_report_the_new_one() {
    given(funded())
        .when(deposit("dep_2", dollars(5)))
        .then_expect_events(vec![deposited("dep_2", 5, 1005, 0)]);
}

#[test]
fn a_repeated_deposit_reference_changes_nothing() {
    given(funded())
        .when(deposit("dep_1", dollars(1000)))
        .then_expect_events(vec![]);
}

#[test]
fn a_deposit_reference_reused_for_another_amount_is_refused() {
    given(funded())
        .when(deposit("dep_1", dollars(999)))
        .then_expect_error(WalletError::ReferenceReused {
            reference: "dep_1".into(),
        });
}

#[test]
fn a_deposit_reference_reused_for_another_currency_is_refused() {
    given(funded())
        .when(deposit("dep_1", Money::positive(1000, eur()).unwrap()))
        .then_expect_error(WalletError::ReferenceReused {
            reference: "dep_1".into(),
        });
}

#[test]
fn balances_are_kept_per_currency() {
    given(with_hold())
        .when(deposit("dep_eur", Money::positive(70, eur()).unwrap()))
        .then_expect_events(vec![WalletEvent::DepositConfirmed {
            owner: OWNER,
            reference: "dep_eur".into(),
            currency: eur(),
            amount: 70,
            available: 70,
            held: 0,
            at: t0(),
        }]);
}

#[test]
fn a_command_naming_another_owner_is_refused() {
    given(funded())
        .when(WalletCommand::Deposit {
            owner: PAYER,
            reference: reference("dep_9"),
            money: dollars(1),
            at: t0(),
        })
        .then_expect_error(WalletError::WrongWallet {
            owner: OWNER,
            named: PAYER,
        });
}

#[test]
fn an_admin_credits_a_wallet() {
    given(funded())
        .when(credit(CREDIT, dollars(250)))
        .then_expect_events(vec![credited(CREDIT, 250, 1250)]);
}

const CREDIT: Uuid = Uuid::from_u128(0xc0ffee);

fn credit(credit_id: Uuid, money: Money) -> WalletCommand {
    WalletCommand::Credit {
        owner: OWNER,
        credit_id,
        money,
        reason: Reason::parse("goodwill").unwrap(),
        actor: admin(),
        at: t0(),
    }
}

fn credited(credit_id: Uuid, amount: i64, available: i64) -> WalletEvent {
    WalletEvent::WalletCredited {
        owner: OWNER,
        credit_id: Some(credit_id),
        currency: usd(),
        amount,
        reason: "goodwill".into(),
        credited_by: admin().user_id,
        available,
        held: 0,
        at: t0(),
    }
}

#[test]
fn a_credit_repeated_under_its_id_changes_nothing() {
    let mut history = funded();
    history.push(credited(CREDIT, 250, 1250));
    given(history.clone())
        .when(credit(CREDIT, dollars(250)))
        .then_expect_events(vec![]);
    given(history)
        .when(credit(CREDIT, dollars(300)))
        .then_expect_error(WalletError::CreditIdReused { credit_id: CREDIT });
}

#[test]
fn a_credit_recorded_before_credits_had_ids_stands_alone() {
    let mut history = funded();
    history.push(WalletEvent::WalletCredited {
        owner: OWNER,
        credit_id: None,
        currency: usd(),
        amount: 250,
        reason: "goodwill".into(),
        credited_by: admin().user_id,
        available: 1250,
        held: 0,
        at: t0(),
    });
    given(history)
        .when(credit(CREDIT, dollars(250)))
        .then_expect_events(vec![credited(CREDIT, 250, 1500)]);
}

/// Stored at version 1, before credits had ids: read through the upcaster, as every reader
/// of the store does (`crate::upcast`).
#[test]
fn an_old_credit_without_an_id_still_reads() {
    let stored = serde_json::json!({"WalletCredited": {"owner": OWNER, "currency": "USD",
        "amount": 250, "reason": "goodwill", "credited_by": admin().user_id,
        "available": 1250, "held": 0, "at": t0()}});
    let current = crate::upcast::upcast("WalletCredited", "1", &stored).expect("upcast");
    let event: WalletEvent = serde_json::from_value(current.into_owned()).expect("an old credit");
    assert!(matches!(
        event,
        WalletEvent::WalletCredited {
            credit_id: None,
            ..
        }
    ));
}

#[test]
fn only_an_admin_may_credit_a_wallet() {
    let auditor = Actor::new(Uuid::from_u128(5), vec![Role::Auditor]);
    for actor in [owner(), auditor] {
        given(vec![])
            .when(WalletCommand::Credit {
                owner: OWNER,
                credit_id: CREDIT,
                money: dollars(250),
                reason: Reason::parse("please").unwrap(),
                actor,
                at: t0(),
            })
            .then_expect_error(WalletError::NotAllowed);
    }
}

#[test]
fn a_credit_that_would_overflow_the_balance_is_refused() {
    let near_max = vec![deposited("dep_1", 1, i64::MAX - 5, 0)];
    given(near_max)
        .when(deposit("dep_2", dollars(10)))
        .then_expect_error(WalletError::BalanceOverflow { currency: usd() });
}

// Withdrawals

#[test]
fn the_owner_requests_a_withdrawal_and_the_amount_is_reserved() {
    given(funded())
        .when(request_withdrawal(400))
        .then_expect_events(vec![withdrawal_requested(400, 600, 400)]);
}

#[test]
fn only_the_owner_may_withdraw_not_even_an_admin() {
    given(funded())
        .when(WalletCommand::RequestWithdrawal {
            owner: OWNER,
            withdrawal_id: WITHDRAWAL,
            money: dollars(1),
            actor: admin(),
            at: t0(),
        })
        .then_expect_error(WalletError::NotOwner);
}

#[test]
fn a_withdrawal_is_refused_when_funds_are_insufficient() {
    given(funded())
        .when(request_withdrawal(1001))
        .then_expect_error(WalletError::InsufficientFunds {
            currency: usd(),
            available: 1000,
            requested: 1001,
        });
}

#[test]
fn held_funds_are_not_available_for_withdrawal() {
    given(with_hold())
        .when(request_withdrawal(701))
        .then_expect_error(WalletError::InsufficientFunds {
            currency: usd(),
            available: 700,
            requested: 701,
        });
}

#[test]
fn an_empty_wallet_cannot_withdraw() {
    given(vec![])
        .when(request_withdrawal(1))
        .then_expect_error(WalletError::InsufficientFunds {
            currency: usd(),
            available: 0,
            requested: 1,
        });
}

#[test]
fn a_repeated_withdrawal_request_changes_nothing() {
    given(with_withdrawal())
        .when(request_withdrawal(400))
        .then_expect_events(vec![]);
}

#[test]
fn a_withdrawal_id_reused_for_another_amount_is_refused() {
    given(with_withdrawal())
        .when(request_withdrawal(401))
        .then_expect_error(WalletError::WithdrawalIdReused {
            withdrawal_id: WITHDRAWAL,
        });
}

#[test]
fn a_completed_withdrawal_leaves_the_system() {
    given(with_withdrawal())
        .when(complete_withdrawal())
        .then_expect_events(vec![withdrawal_completed(400, 600, 0)]);
}

#[test]
fn completing_a_withdrawal_twice_changes_nothing() {
    let mut history = with_withdrawal();
    history.push(withdrawal_completed(400, 600, 0));
    given(history)
        .when(complete_withdrawal())
        .then_expect_events(vec![]);
}

#[test]
fn completing_a_failed_withdrawal_is_refused() {
    let mut history = with_withdrawal();
    history.push(withdrawal_failed(400, 1000, 0));
    given(history)
        .when(complete_withdrawal())
        .then_expect_error(WalletError::WithdrawalAlreadySettled {
            withdrawal_id: WITHDRAWAL,
            state: WithdrawalState::Failed,
        });
}

#[test]
fn a_failed_withdrawal_returns_the_amount_to_the_balance() {
    given(with_withdrawal())
        .when(fail_withdrawal())
        .then_expect_events(vec![withdrawal_failed(400, 1000, 0)]);
}

#[test]
fn failing_a_withdrawal_twice_changes_nothing() {
    let mut history = with_withdrawal();
    history.push(withdrawal_failed(400, 1000, 0));
    given(history)
        .when(fail_withdrawal())
        .then_expect_events(vec![]);
}

#[test]
fn failing_a_completed_withdrawal_is_refused() {
    let mut history = with_withdrawal();
    history.push(withdrawal_completed(400, 600, 0));
    given(history).when(fail_withdrawal()).then_expect_error(
        WalletError::WithdrawalAlreadySettled {
            withdrawal_id: WITHDRAWAL,
            state: WithdrawalState::Completed,
        },
    );
}

#[test]
fn settling_an_unknown_withdrawal_is_refused() {
    let unknown = WalletError::UnknownWithdrawal {
        withdrawal_id: WITHDRAWAL,
    };
    for history in [vec![], funded()] {
        for command in [complete_withdrawal(), fail_withdrawal()] {
            given(history.clone())
                .when(command)
                .then_expect_error(unknown.clone());
        }
    }
}

// Escrow holds

#[test]
fn a_hold_moves_funds_from_available_to_held() {
    given(funded())
        .when(hold(300))
        .then_expect_events(vec![funds_held(300, 700, 300)]);
}

#[test]
fn a_hold_beyond_the_available_balance_is_recorded_as_rejected_not_refused() {
    given(with_withdrawal())
        .when(hold(601))
        .then_expect_events(vec![hold_rejected(601, 600, 400)]);
}

#[test]
fn a_hold_on_a_wallet_without_history_is_rejected_and_names_the_owner() {
    given(vec![])
        .when(hold(1))
        .then_expect_events(vec![hold_rejected(1, 0, 0)]);
}

#[test]
fn a_repeated_hold_changes_nothing() {
    given(with_hold())
        .when(hold(300))
        .then_expect_events(vec![]);
}

#[test]
fn a_repeated_rejected_hold_changes_nothing_even_once_funds_arrived() {
    given(vec![
        hold_rejected(300, 0, 0),
        deposited("dep_1", 1000, 1000, 0),
    ])
    .when(hold(300))
    .then_expect_events(vec![]);
}

#[test]
fn a_payment_id_reused_for_another_hold_amount_is_refused() {
    given(with_hold())
        .when(hold(301))
        .then_expect_error(WalletError::PaymentIdReused {
            payment_id: PAYMENT,
        });
}

#[test]
fn releasing_a_hold_takes_the_amount_out_of_the_wallet() {
    given(with_hold())
        .when(release())
        .then_expect_events(vec![hold_released(300, 700, 0)]);
}

#[test]
fn refunding_a_hold_returns_the_amount_to_available() {
    given(with_hold())
        .when(refund())
        .then_expect_events(vec![hold_refunded(300, 1000, 0)]);
}

#[test]
fn repeating_the_same_resolution_changes_nothing() {
    let mut released = with_hold();
    released.push(hold_released(300, 700, 0));
    let mut refunded = with_hold();
    refunded.push(hold_refunded(300, 1000, 0));
    for (history, command) in [(released, release()), (refunded, refund())] {
        given(history).when(command).then_expect_events(vec![]);
    }
}

#[test]
fn a_hold_resolves_exactly_once_so_the_other_resolution_is_refused() {
    let mut released = with_hold();
    released.push(hold_released(300, 700, 0));
    given(released)
        .when(refund())
        .then_expect_error(WalletError::HoldAlreadyResolved {
            payment_id: PAYMENT,
            state: HoldState::Released,
        });

    let mut refunded = with_hold();
    refunded.push(hold_refunded(300, 1000, 0));
    given(refunded)
        .when(release())
        .then_expect_error(WalletError::HoldAlreadyResolved {
            payment_id: PAYMENT,
            state: HoldState::Refunded,
        });
}

#[test]
fn resolving_an_unknown_hold_is_refused() {
    for history in [vec![], funded()] {
        for command in [release(), refund()] {
            given(history.clone())
                .when(command)
                .then_expect_error(WalletError::UnknownHold {
                    payment_id: PAYMENT,
                });
        }
    }
}

#[test]
fn a_rejected_hold_has_nothing_to_resolve() {
    for command in [release(), refund()] {
        given(vec![hold_rejected(300, 0, 0)])
            .when(command)
            .then_expect_error(WalletError::HoldWasRejected {
                payment_id: PAYMENT,
            });
    }
}

#[test]
fn a_release_that_would_make_held_negative_is_refused() {
    // A history whose recorded balance disagrees with its holds: the guard refuses rather
    // than let a balance go below zero.
    let inconsistent = vec![deposited("dep_1", 1000, 1000, 0), funds_held(300, 700, 100)];
    given(inconsistent)
        .when(release())
        .then_expect_error(WalletError::BalanceWouldGoNegative { currency: usd() });
}

// Payments received

#[test]
fn a_received_payment_credits_available() {
    given(vec![])
        .when(receive(dollars(300), PAYER))
        .then_expect_events(vec![received(300, 300)]);
}

#[test]
fn a_repeated_payment_changes_nothing() {
    given(vec![received(300, 300)])
        .when(receive(dollars(300), PAYER))
        .then_expect_events(vec![]);
}

#[test]
fn a_payment_id_reused_for_another_amount_or_payer_is_refused() {
    for command in [
        receive(dollars(301), PAYER),
        receive(dollars(300), Uuid::from_u128(10)),
    ] {
        given(vec![received(300, 300)])
            .when(command)
            .then_expect_error(WalletError::PaymentIdReused {
                payment_id: PAYMENT,
            });
    }
}

// Stored form

#[test]
fn event_types_are_the_variant_names_at_version_one() {
    let event = funds_held(300, 700, 300);
    assert_eq!(event.event_type(), "FundsHeld");
    assert_eq!(event.event_version(), "1");
    assert_eq!(hold_rejected(1, 0, 0).event_type(), "HoldRejected");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["FundsHeld"]["currency"], "USD");
    assert_eq!(json["FundsHeld"]["available"], 700);
}

#[test]
fn the_wallet_state_survives_a_snapshot_round_trip() {
    let mut wallet = Wallet::default();
    for event in with_hold() {
        wallet.apply(event);
    }
    let json = serde_json::to_string(&wallet).unwrap();
    assert_eq!(serde_json::from_str::<Wallet>(&json).unwrap(), wallet);
    let state = wallet.state.unwrap();
    assert_eq!(state.owner, OWNER);
    assert_eq!(
        state.balance(usd()),
        Balance {
            available: 700,
            held: 300
        }
    );
    assert_eq!(state.balance(eur()), Balance::default());
}

#[test]
fn the_wallet_keeps_its_balances_and_not_its_history() {
    // What a process caches of a hot wallet: the same size after a thousand deposits as after
    // one (each deposit's reference used to stay in it, about 140 bytes a deposit).
    let mut wallet = Wallet::default();
    wallet.apply(deposited("dep-0", 1000, 1000, 0));
    let one = serde_json::to_string(&wallet).unwrap().len();
    for n in 1..1000 {
        // Balances of the same width, so that only what else is kept could change the size.
        wallet.apply(deposited(&format!("dep-{n}"), 1, 1000 + n % 9, 0));
    }
    assert_eq!(serde_json::to_string(&wallet).unwrap().len(), one);
}
