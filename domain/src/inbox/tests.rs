//! Given/when/then: one test per rule of an inbox.

use super::*;
use crate::{Actor, Role};
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

type InboxTest = TestFramework<Inbox>;

const OWNER: Uuid = Uuid::from_u128(1);
const N1: Uuid = Uuid::from_u128(101);
const N2: Uuid = Uuid::from_u128(102);
const N3: Uuid = Uuid::from_u128(103);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn owner() -> Actor {
    Actor::new(OWNER, vec![Role::Member])
}

fn mark(actor: Actor, ids: Vec<Uuid>) -> InboxCommand {
    InboxCommand::MarkRead {
        owner: OWNER,
        notification_ids: ids,
        actor,
        at: t0(),
    }
}

fn read(ids: Vec<Uuid>) -> InboxEvent {
    InboxEvent::NotificationsRead {
        owner: OWNER,
        notification_ids: ids,
        at: t0(),
    }
}

#[test]
fn the_owner_marks_unread_notifications_read() {
    InboxTest::with(())
        .given_no_previous_events()
        .when(mark(owner(), vec![N1, N2]))
        .then_expect_events(vec![read(vec![N1, N2])]);
}

#[test]
fn only_the_ids_not_yet_read_are_recorded() {
    InboxTest::with(())
        .given(vec![read(vec![N1])])
        .when(mark(owner(), vec![N1, N2, N3]))
        .then_expect_events(vec![read(vec![N2, N3])]);
}

#[test]
fn marking_what_is_already_read_decides_nothing() {
    InboxTest::with(())
        .given(vec![read(vec![N1]), read(vec![N2])])
        .when(mark(owner(), vec![N2, N1]))
        .then_expect_events(vec![]);
}

#[test]
fn an_id_named_twice_is_recorded_once() {
    InboxTest::with(())
        .given_no_previous_events()
        .when(mark(owner(), vec![N1, N2, N1]))
        .then_expect_events(vec![read(vec![N1, N2])]);
}

#[test]
fn nobody_but_the_owner_may_mark_read_not_even_an_admin() {
    for actor in [
        Actor::new(Uuid::from_u128(2), vec![Role::Member]),
        Actor::new(Uuid::from_u128(3), vec![Role::Admin]),
    ] {
        InboxTest::with(())
            .given(vec![read(vec![N1])])
            .when(mark(actor, vec![N2]))
            .then_expect_error(InboxError::NotOwner);
    }
}

#[test]
fn a_command_for_another_users_inbox_is_refused() {
    let stranger = Uuid::from_u128(2);
    InboxTest::with(())
        .given(vec![read(vec![N1])])
        .when(InboxCommand::MarkRead {
            owner: stranger,
            notification_ids: vec![N2],
            actor: Actor::new(stranger, vec![Role::Member]),
            at: t0(),
        })
        .then_expect_error(InboxError::WrongInbox {
            owner: OWNER,
            named: stranger,
        });
}

#[test]
fn at_least_one_id_must_be_named() {
    InboxTest::with(())
        .given_no_previous_events()
        .when(mark(owner(), vec![]))
        .then_expect_error(InboxError::NoNotifications);
}

#[test]
fn at_most_two_hundred_ids_may_be_named_at_once() {
    let ids = |n: u128| {
        (0..n)
            .map(|i| Uuid::from_u128(1000 + i))
            .collect::<Vec<_>>()
    };
    InboxTest::with(())
        .given_no_previous_events()
        .when(mark(owner(), ids(201)))
        .then_expect_error(InboxError::TooManyNotifications {
            given: 201,
            max: MAX_IDS_PER_COMMAND,
        });
    InboxTest::with(())
        .given_no_previous_events()
        .when(mark(owner(), ids(200)))
        .then_expect_events(vec![read(ids(200))]);
}

#[test]
fn the_read_ids_are_folded_into_the_state() {
    let mut inbox = Inbox::default();
    inbox.apply(read(vec![N1]));
    inbox.apply(read(vec![N2]));
    let state = inbox.state.expect("an inbox after its first event");
    assert_eq!(state.owner, OWNER);
    assert_eq!(state.read, BTreeSet::from([N1, N2]));
}

#[test]
fn the_event_is_named_and_versioned_for_the_store() {
    use cqrs_es::DomainEvent;
    let event = read(vec![N1]);
    assert_eq!(event.event_type(), "NotificationsRead");
    assert_eq!(event.event_version(), "1");
}
