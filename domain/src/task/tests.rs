//! Given/when/then: one test per rule of the task lifecycle.

use super::*;
use crate::values::{Description, JsonDoc, Note, Priority, QueueName, Title};
use crate::{Actor, Role};
use chrono::TimeZone;
use cqrs_es::test::TestFramework;

type TaskTest = TestFramework<Task>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn creator() -> Actor {
    Actor::new(Uuid::from_u128(1), vec![Role::Member])
}

fn worker() -> Actor {
    Actor::new(Uuid::from_u128(2), vec![Role::Member])
}

fn other() -> Actor {
    Actor::new(Uuid::from_u128(3), vec![Role::Member])
}

fn admin() -> Actor {
    Actor::new(Uuid::from_u128(4), vec![Role::Admin])
}

const LEASE: Uuid = Uuid::from_u128(100);

fn create_command(max_attempts: u32) -> TaskCommand {
    TaskCommand::Create(CreateTask {
        task_id: Uuid::from_u128(50),
        queue: QueueName::parse("emails").unwrap(),
        title: Title::parse("send welcome").unwrap(),
        description: Description::parse("").unwrap(),
        priority: Priority::parse(5).unwrap(),
        payload: Some(JsonDoc::parse("payload", serde_json::json!({"to": "a@b.c"})).unwrap()),
        max_attempts,
        bounty_id: None,
        actor: creator(),
        at: t0(),
    })
}

fn created(max_attempts: u32) -> TaskEvent {
    TaskEvent::TaskCreated {
        queue: "emails".into(),
        title: "send welcome".into(),
        description: String::new(),
        priority: 5,
        payload: Some(serde_json::json!({"to": "a@b.c"})),
        max_attempts,
        bounty_id: None,
        creator: creator().user_id,
        created_at: t0(),
    }
}

fn claimed(attempt: u32, lease_id: Uuid) -> TaskEvent {
    TaskEvent::TaskClaimed {
        queue: "emails".into(),
        worker: worker().user_id,
        lease_id,
        attempt,
        lease_seconds: 30,
        lease_expires_at: t0() + Duration::seconds(30),
        claimed_at: t0(),
    }
}

fn claim(at: DateTime<Utc>) -> TaskCommand {
    TaskCommand::Claim {
        worker: worker(),
        lease_id: LEASE,
        lease_seconds: 30,
        at,
    }
}

fn fail(retryable: bool) -> TaskCommand {
    TaskCommand::Fail {
        actor: worker(),
        error: Note::parse("smtp down").unwrap(),
        retryable,
        at: t0(),
    }
}

#[test]
fn creating_a_task_queues_it() {
    TaskTest::with(())
        .given_no_previous_events()
        .when(create_command(3))
        .then_expect_events(vec![created(3)]);
}

#[test]
fn a_task_cannot_be_created_twice() {
    TaskTest::with(())
        .given(vec![created(3)])
        .when(create_command(3))
        .then_expect_error(TaskError::AlreadyExists);
}

#[test]
fn commands_on_a_missing_task_are_refused() {
    TaskTest::with(())
        .given_no_previous_events()
        .when(claim(t0()))
        .then_expect_error(TaskError::NotFound);
}

#[test]
fn claiming_a_queued_task_leases_it_and_counts_an_attempt() {
    TaskTest::with(())
        .given(vec![created(3)])
        .when(claim(t0()))
        .then_expect_events(vec![claimed(1, LEASE)]);
}

#[test]
fn a_claimed_task_cannot_be_claimed_again() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(claim(t0()))
        .then_expect_error(TaskError::NotQueued(TaskStatus::Claimed));
}

#[test]
fn the_holder_can_heartbeat_and_extend_the_lease() {
    let at = t0() + Duration::seconds(20);
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::Heartbeat {
            actor: worker(),
            progress: Some(40),
            note: Some(Note::parse("halfway").unwrap()),
            at,
        })
        .then_expect_events(vec![TaskEvent::TaskHeartbeatRecorded {
            worker: worker().user_id,
            progress: Some(40),
            note: Some("halfway".into()),
            lease_expires_at: at + Duration::seconds(30),
            at,
        }]);
}

#[test]
fn only_the_holder_may_heartbeat_complete_or_fail() {
    let heartbeat = |actor| TaskCommand::Heartbeat {
        actor,
        progress: None,
        note: None,
        at: t0(),
    };
    let complete = |actor| TaskCommand::Complete {
        actor,
        result: None,
        at: t0(),
    };
    let fail = |actor| TaskCommand::Fail {
        actor,
        error: Note::parse("no").unwrap(),
        retryable: true,
        at: t0(),
    };
    // Those who may know the task is there learn that it is not theirs to work.
    for command in [heartbeat(creator()), complete(creator()), fail(admin())] {
        TaskTest::with(())
            .given(vec![created(3), claimed(1, LEASE)])
            .when(command)
            .then_expect_error(TaskError::NotHolder);
    }
    // A stranger is told what an unknown id would tell them.
    for command in [heartbeat(other()), complete(other()), fail(other())] {
        TaskTest::with(())
            .given(vec![created(3), claimed(1, LEASE)])
            .when(command)
            .then_expect_error(TaskError::NotFound);
    }
}

#[test]
fn an_unclaimed_task_cannot_be_completed_and_only_its_creator_learns_its_status() {
    let complete = |actor| TaskCommand::Complete {
        actor,
        result: None,
        at: t0(),
    };
    TaskTest::with(())
        .given(vec![created(3)])
        .when(complete(creator()))
        .then_expect_error(TaskError::NotClaimed(TaskStatus::Queued));
    TaskTest::with(())
        .given(vec![created(3)])
        .when(complete(worker()))
        .then_expect_error(TaskError::NotFound);
}

#[test]
fn the_holder_completes_the_task_with_a_result() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::Complete {
            actor: worker(),
            result: Some(JsonDoc::parse("result", serde_json::json!({"ok": true})).unwrap()),
            at: t0(),
        })
        .then_expect_events(vec![TaskEvent::TaskCompleted {
            queue: "emails".into(),
            worker: worker().user_id,
            result: Some(serde_json::json!({"ok": true})),
            completed_at: t0(),
        }]);
}

#[test]
fn a_failure_with_attempts_left_requeues_the_task() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(fail(true))
        .then_expect_events(vec![TaskEvent::TaskFailed {
            queue: "emails".into(),
            worker: worker().user_id,
            error: "smtp down".into(),
            attempt: 1,
            outcome: FailureOutcome::Requeued,
            failed_at: t0(),
        }]);
}

#[test]
fn a_failure_on_the_last_attempt_dead_letters_the_task() {
    let second = Uuid::from_u128(101);
    let failed_first = TaskEvent::TaskFailed {
        queue: "emails".into(),
        worker: worker().user_id,
        error: "smtp down".into(),
        attempt: 1,
        outcome: FailureOutcome::Requeued,
        failed_at: t0(),
    };
    TaskTest::with(())
        .given(vec![
            created(2),
            claimed(1, LEASE),
            failed_first,
            claimed(2, second),
        ])
        .when(fail(true))
        .then_expect_events(vec![TaskEvent::TaskFailed {
            queue: "emails".into(),
            worker: worker().user_id,
            error: "smtp down".into(),
            attempt: 2,
            outcome: FailureOutcome::DeadLettered,
            failed_at: t0(),
        }]);
}

#[test]
fn a_failure_that_is_not_retryable_dead_letters_at_once() {
    TaskTest::with(())
        .given(vec![created(5), claimed(1, LEASE)])
        .when(fail(false))
        .then_expect_events(vec![TaskEvent::TaskFailed {
            queue: "emails".into(),
            worker: worker().user_id,
            error: "smtp down".into(),
            attempt: 1,
            outcome: FailureOutcome::DeadLettered,
            failed_at: t0(),
        }]);
}

#[test]
fn an_expired_lease_requeues_the_task_as_a_used_attempt() {
    let at = t0() + Duration::seconds(31);
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::ExpireLease {
            lease_id: LEASE,
            at,
        })
        .then_expect_events(vec![TaskEvent::TaskLeaseExpired {
            queue: "emails".into(),
            worker: worker().user_id,
            lease_id: LEASE,
            attempt: 1,
            outcome: FailureOutcome::Requeued,
            expired_at: at,
        }]);
}

#[test]
fn an_expired_lease_on_the_last_attempt_dead_letters_the_task() {
    let at = t0() + Duration::seconds(31);
    TaskTest::with(())
        .given(vec![created(1), claimed(1, LEASE)])
        .when(TaskCommand::ExpireLease {
            lease_id: LEASE,
            at,
        })
        .then_expect_events(vec![TaskEvent::TaskLeaseExpired {
            queue: "emails".into(),
            worker: worker().user_id,
            lease_id: LEASE,
            attempt: 1,
            outcome: FailureOutcome::DeadLettered,
            expired_at: at,
        }]);
}

#[test]
fn a_lease_cannot_expire_early() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::ExpireLease {
            lease_id: LEASE,
            at: t0() + Duration::seconds(29),
        })
        .then_expect_error(TaskError::LeaseNotExpired);
}

#[test]
fn a_heartbeat_pushes_expiry_back() {
    let beat = TaskEvent::TaskHeartbeatRecorded {
        worker: worker().user_id,
        progress: None,
        note: None,
        lease_expires_at: t0() + Duration::seconds(50),
        at: t0() + Duration::seconds(20),
    };
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE), beat])
        .when(TaskCommand::ExpireLease {
            lease_id: LEASE,
            at: t0() + Duration::seconds(40),
        })
        .then_expect_error(TaskError::LeaseNotExpired);
}

#[test]
fn a_stale_expiry_cannot_end_a_newer_lease() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::ExpireLease {
            lease_id: Uuid::from_u128(999),
            at: t0() + Duration::seconds(60),
        })
        .then_expect_error(TaskError::LeaseMismatch);
}

#[test]
fn the_creator_can_cancel_a_queued_or_claimed_task() {
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(TaskCommand::Cancel {
            actor: creator(),
            at: t0(),
        })
        .then_expect_events(vec![TaskEvent::TaskCancelled {
            queue: "emails".into(),
            cancelled_by: creator().user_id,
            previous_status: TaskStatus::Claimed,
            cancelled_at: t0(),
        }]);
}

#[test]
fn an_admin_can_cancel_anyones_task() {
    TaskTest::with(())
        .given(vec![created(3)])
        .when(TaskCommand::Cancel {
            actor: admin(),
            at: t0(),
        })
        .then_expect_events(vec![TaskEvent::TaskCancelled {
            queue: "emails".into(),
            cancelled_by: admin().user_id,
            previous_status: TaskStatus::Queued,
            cancelled_at: t0(),
        }]);
}

#[test]
fn nobody_else_may_cancel() {
    let cancel = |actor| TaskCommand::Cancel { actor, at: t0() };
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE)])
        .when(cancel(worker()))
        .then_expect_error(TaskError::NotCreator);
    TaskTest::with(())
        .given(vec![created(3)])
        .when(cancel(worker()))
        .then_expect_error(TaskError::NotFound);
}

#[test]
fn a_finished_task_cannot_be_cancelled() {
    let completed = TaskEvent::TaskCompleted {
        queue: "emails".into(),
        worker: worker().user_id,
        result: None,
        completed_at: t0(),
    };
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE), completed])
        .when(TaskCommand::Cancel {
            actor: creator(),
            at: t0(),
        })
        .then_expect_error(TaskError::AlreadyFinished(TaskStatus::Completed));
}

#[test]
fn a_requeued_task_can_be_claimed_again_by_anyone() {
    let expired = TaskEvent::TaskLeaseExpired {
        queue: "emails".into(),
        worker: worker().user_id,
        lease_id: LEASE,
        attempt: 1,
        outcome: FailureOutcome::Requeued,
        expired_at: t0(),
    };
    let second = Uuid::from_u128(101);
    TaskTest::with(())
        .given(vec![created(3), claimed(1, LEASE), expired])
        .when(TaskCommand::Claim {
            worker: worker(),
            lease_id: second,
            lease_seconds: 30,
            at: t0(),
        })
        .then_expect_events(vec![claimed(2, second)]);
}
