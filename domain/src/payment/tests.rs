//! Given/when/then: one test per rule of a payment's escrow lifecycle.

use super::*;
use crate::values::Note;
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

type PaymentTest = TestFramework<Payment>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

const PAYMENT: Uuid = Uuid::from_u128(200);
const PAYER: Uuid = Uuid::from_u128(1);
const PAYEE: Uuid = Uuid::from_u128(2);
const BOUNTY: Uuid = Uuid::from_u128(300);

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn note(text: &str) -> Note {
    Note::parse(text).unwrap()
}

fn request(cents: i64) -> PaymentCommand {
    PaymentCommand::Request {
        payment_id: PAYMENT,
        payer: PAYER,
        money: Money::positive(cents, usd()).unwrap(),
        bounty_id: BOUNTY,
        at: t0(),
    }
}

fn requested() -> PaymentEvent {
    PaymentEvent::PaymentRequested {
        payer: PAYER,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        at: t0(),
    }
}

fn held() -> PaymentEvent {
    PaymentEvent::PaymentHeld {
        payer: PAYER,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        at: t0(),
    }
}

fn hold_failed() -> PaymentEvent {
    PaymentEvent::PaymentHoldFailed {
        payer: PAYER,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        reason: "insufficient_funds".into(),
        at: t0(),
    }
}

fn release_requested() -> PaymentEvent {
    PaymentEvent::ReleaseRequested {
        payer: PAYER,
        payee: PAYEE,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        at: t0(),
    }
}

fn refund_requested() -> PaymentEvent {
    PaymentEvent::RefundRequested {
        payer: PAYER,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        reason: "bounty cancelled".into(),
        at: t0(),
    }
}

fn released() -> PaymentEvent {
    PaymentEvent::PaymentReleased {
        payer: PAYER,
        payee: PAYEE,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        at: t0(),
    }
}

fn refunded() -> PaymentEvent {
    PaymentEvent::PaymentRefunded {
        payer: PAYER,
        bounty_id: BOUNTY,
        currency: usd(),
        amount: 500,
        at: t0(),
    }
}

fn release() -> PaymentCommand {
    PaymentCommand::Release {
        payee: PAYEE,
        at: t0(),
    }
}

fn refund() -> PaymentCommand {
    PaymentCommand::Refund {
        reason: note("bounty cancelled"),
        at: t0(),
    }
}

fn mark_held() -> PaymentCommand {
    PaymentCommand::MarkHeld { at: t0() }
}

fn mark_hold_failed() -> PaymentCommand {
    PaymentCommand::MarkHoldFailed {
        reason: note("insufficient_funds"),
        at: t0(),
    }
}

#[test]
fn requesting_a_payment_records_payer_bounty_and_amount() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(request(500))
        .then_expect_events(vec![requested()]);
}

#[test]
fn a_repeated_request_changes_nothing() {
    PaymentTest::with(())
        .given(vec![requested(), held()])
        .when(request(500))
        .then_expect_events(vec![]);
}

#[test]
fn a_request_with_other_details_for_an_existing_payment_is_refused() {
    PaymentTest::with(())
        .given(vec![requested()])
        .when(request(501))
        .then_expect_error(PaymentError::AlreadyExists);
}

#[test]
fn commands_on_a_missing_payment_are_refused() {
    for command in [mark_held(), release(), refund()] {
        PaymentTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(PaymentError::NotFound);
    }
}

#[test]
fn a_successful_wallet_hold_marks_the_payment_held() {
    PaymentTest::with(())
        .given(vec![requested()])
        .when(mark_held())
        .then_expect_events(vec![held()]);
}

#[test]
fn marking_held_again_changes_nothing_even_after_resolution() {
    for history in [
        vec![requested(), held()],
        vec![requested(), held(), release_requested(), released()],
    ] {
        PaymentTest::with(())
            .given(history)
            .when(mark_held())
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_failed_hold_cannot_later_be_marked_held() {
    PaymentTest::with(())
        .given(vec![requested(), hold_failed()])
        .when(mark_held())
        .then_expect_error(PaymentError::WrongStatus(PaymentStatus::HoldFailed));
}

#[test]
fn a_rejected_wallet_hold_marks_the_payment_failed() {
    PaymentTest::with(())
        .given(vec![requested()])
        .when(mark_hold_failed())
        .then_expect_events(vec![hold_failed()]);
}

#[test]
fn marking_the_hold_failed_again_changes_nothing() {
    PaymentTest::with(())
        .given(vec![requested(), hold_failed()])
        .when(mark_hold_failed())
        .then_expect_events(vec![]);
}

#[test]
fn a_held_payment_cannot_be_marked_failed() {
    PaymentTest::with(())
        .given(vec![requested(), held()])
        .when(mark_hold_failed())
        .then_expect_error(PaymentError::WrongStatus(PaymentStatus::Held));
}

#[test]
fn releasing_a_held_payment_names_the_payee() {
    PaymentTest::with(())
        .given(vec![requested(), held()])
        .when(release())
        .then_expect_events(vec![release_requested()]);
}

#[test]
fn refunding_a_held_payment_is_requested() {
    PaymentTest::with(())
        .given(vec![requested(), held()])
        .when(refund())
        .then_expect_events(vec![refund_requested()]);
}

#[test]
fn a_payment_not_yet_held_cannot_be_resolved() {
    for (history, status) in [
        (vec![requested()], PaymentStatus::Requested),
        (vec![requested(), hold_failed()], PaymentStatus::HoldFailed),
    ] {
        for command in [release(), refund()] {
            PaymentTest::with(())
                .given(history.clone())
                .when(command)
                .then_expect_error(PaymentError::NotHeld(status));
        }
    }
}

#[test]
fn once_released_a_refund_is_refused() {
    for (history, status) in [
        (
            vec![requested(), held(), release_requested()],
            PaymentStatus::Releasing,
        ),
        (
            vec![requested(), held(), release_requested(), released()],
            PaymentStatus::Released,
        ),
    ] {
        PaymentTest::with(())
            .given(history)
            .when(refund())
            .then_expect_error(PaymentError::AlreadyResolving(status));
    }
}

#[test]
fn once_refunded_a_release_is_refused() {
    for (history, status) in [
        (
            vec![requested(), held(), refund_requested()],
            PaymentStatus::Refunding,
        ),
        (
            vec![requested(), held(), refund_requested(), refunded()],
            PaymentStatus::Refunded,
        ),
    ] {
        PaymentTest::with(())
            .given(history)
            .when(release())
            .then_expect_error(PaymentError::AlreadyResolving(status));
    }
}

#[test]
fn repeating_the_winning_resolution_changes_nothing() {
    let cases = [
        (vec![requested(), held(), release_requested()], release()),
        (
            vec![requested(), held(), release_requested(), released()],
            release(),
        ),
        (vec![requested(), held(), refund_requested()], refund()),
        (
            vec![requested(), held(), refund_requested(), refunded()],
            refund(),
        ),
    ];
    for (history, command) in cases {
        PaymentTest::with(())
            .given(history)
            .when(command)
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_release_to_another_payee_is_refused() {
    PaymentTest::with(())
        .given(vec![requested(), held(), release_requested()])
        .when(PaymentCommand::Release {
            payee: Uuid::from_u128(77),
            at: t0(),
        })
        .then_expect_error(PaymentError::PayeeMismatch { payee: PAYEE });
}

#[test]
fn a_releasing_payment_is_marked_released() {
    PaymentTest::with(())
        .given(vec![requested(), held(), release_requested()])
        .when(PaymentCommand::MarkReleased { at: t0() })
        .then_expect_events(vec![released()]);
}

#[test]
fn marking_released_again_changes_nothing() {
    PaymentTest::with(())
        .given(vec![requested(), held(), release_requested(), released()])
        .when(PaymentCommand::MarkReleased { at: t0() })
        .then_expect_events(vec![]);
}

#[test]
fn only_a_releasing_payment_can_be_marked_released() {
    PaymentTest::with(())
        .given(vec![requested(), held(), refund_requested()])
        .when(PaymentCommand::MarkReleased { at: t0() })
        .then_expect_error(PaymentError::WrongStatus(PaymentStatus::Refunding));
}

#[test]
fn a_refunding_payment_is_marked_refunded() {
    PaymentTest::with(())
        .given(vec![requested(), held(), refund_requested()])
        .when(PaymentCommand::MarkRefunded { at: t0() })
        .then_expect_events(vec![refunded()]);
}

#[test]
fn marking_refunded_again_changes_nothing() {
    PaymentTest::with(())
        .given(vec![requested(), held(), refund_requested(), refunded()])
        .when(PaymentCommand::MarkRefunded { at: t0() })
        .then_expect_events(vec![]);
}

#[test]
fn only_a_refunding_payment_can_be_marked_refunded() {
    PaymentTest::with(())
        .given(vec![requested(), held()])
        .when(PaymentCommand::MarkRefunded { at: t0() })
        .then_expect_error(PaymentError::WrongStatus(PaymentStatus::Held));
}

#[test]
fn event_types_are_the_variant_names_at_version_one() {
    assert_eq!(release_requested().event_type(), "ReleaseRequested");
    assert_eq!(refunded().event_type(), "PaymentRefunded");
    assert_eq!(held().event_version(), "1");
    for status in PaymentStatus::ALL {
        assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
    }
}
