//! Given/when/then: one test per rule of a person.

use super::*;
use crate::{Actor, Role};
use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;

type PersonTest = TestFramework<Person>;

const PERSON: Uuid = Uuid::from_u128(1);
const ADMIN: Uuid = Uuid::from_u128(9);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn erase(actor: Actor) -> PersonCommand {
    PersonCommand::Erase {
        person: PERSON,
        actor,
        at: t0(),
    }
}

fn erased(by: Uuid) -> PersonEvent {
    PersonEvent::PersonErased {
        person: PERSON,
        by,
        at: t0(),
    }
}

#[test]
fn a_person_erases_themself() {
    PersonTest::with(())
        .given_no_previous_events()
        .when(erase(Actor::new(PERSON, vec![Role::Member])))
        .then_expect_events(vec![erased(PERSON)]);
}

#[test]
fn an_admin_erases_a_person_and_is_named_as_who_erased() {
    PersonTest::with(())
        .given_no_previous_events()
        .when(erase(Actor::new(ADMIN, vec![Role::Admin])))
        .then_expect_events(vec![erased(ADMIN)]);
}

#[test]
fn nobody_else_may_erase_a_person_not_even_an_auditor() {
    for roles in [vec![Role::Member], vec![Role::Auditor]] {
        PersonTest::with(())
            .given_no_previous_events()
            .when(erase(Actor::new(Uuid::from_u128(2), roles)))
            .then_expect_error(PersonError::NotAllowed);
    }
}

#[test]
fn erasing_an_erased_person_again_decides_nothing() {
    PersonTest::with(())
        .given(vec![erased(PERSON)])
        .when(erase(Actor::new(ADMIN, vec![Role::Admin])))
        .then_expect_events(vec![]);
}

#[test]
fn a_command_for_another_person_is_refused() {
    let stranger = Uuid::from_u128(2);
    PersonTest::with(())
        .given(vec![erased(PERSON)])
        .when(PersonCommand::Erase {
            person: stranger,
            actor: Actor::new(stranger, vec![Role::Member]),
            at: t0(),
        })
        .then_expect_error(PersonError::WrongPerson {
            person: PERSON,
            named: stranger,
        });
}

#[test]
fn the_first_erasure_is_folded_into_the_state() {
    let mut person = Person::default();
    person.apply(erased(ADMIN));
    person.apply(erased(PERSON));
    assert_eq!(
        person.erased,
        Some(Erasure {
            person: PERSON,
            by: ADMIN,
            at: t0()
        })
    );
}

#[test]
fn the_event_is_named_and_versioned_for_the_store() {
    use cqrs_es::DomainEvent;
    let event = erased(PERSON);
    assert_eq!(event.event_type(), "PersonErased");
    assert_eq!(event.event_version(), "1");
}
