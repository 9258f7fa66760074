//! Given/when/then: one test per rule of a bounty's lifecycle.

use super::*;
use crate::money::Currency;
use crate::values::{Description, Note, Pitch, Reason, Title};
use crate::{Actor, Role};
use chrono::{Duration, TimeZone};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

type BountyTest = TestFramework<Bounty>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn deadline() -> DateTime<Utc> {
    t0() + Duration::days(7)
}

const BOUNTY: Uuid = Uuid::from_u128(300);
const PAYMENT: Uuid = Uuid::from_u128(301);
const APP: Uuid = Uuid::from_u128(500);
const APP2: Uuid = Uuid::from_u128(501);

fn poster() -> Actor {
    Actor::new(Uuid::from_u128(1), vec![Role::Member])
}

fn hunter() -> Actor {
    Actor::new(Uuid::from_u128(2), vec![Role::Member])
}

fn rival() -> Actor {
    Actor::new(Uuid::from_u128(3), vec![Role::Member])
}

fn admin() -> Actor {
    Actor::new(Uuid::from_u128(4), vec![Role::Admin])
}

fn reward() -> Money {
    Money::positive(5_000, Currency::parse("USD").unwrap()).unwrap()
}

fn post(deadline: Option<DateTime<Utc>>) -> BountyCommand {
    BountyCommand::Post(PostBounty {
        bounty_id: BOUNTY,
        payment_id: PAYMENT,
        poster: poster(),
        title: Title::parse("Fix the flaky test").unwrap(),
        description: Description::parse("It fails on Tuesdays.").unwrap(),
        reward: reward(),
        deadline,
        tags: Tags::parse(["rust", "testing", "rust"]).unwrap(),
        at: t0(),
    })
}

fn posted_with(deadline: Option<DateTime<Utc>>) -> BountyEvent {
    BountyEvent::BountyPosted {
        poster: poster().user_id,
        payment_id: PAYMENT,
        title: "Fix the flaky test".into(),
        description: "It fails on Tuesdays.".into(),
        reward: reward(),
        deadline,
        tags: vec!["rust".into(), "testing".into()],
        at: t0(),
    }
}

fn posted() -> BountyEvent {
    posted_with(Some(deadline()))
}

fn opened() -> BountyEvent {
    BountyEvent::BountyOpened {
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    }
}

fn unfunded() -> BountyEvent {
    BountyEvent::BountyUnfunded {
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        reason: "insufficient_funds".into(),
        at: t0(),
    }
}

fn applied(application_id: Uuid, who: &Actor) -> BountyEvent {
    BountyEvent::ApplicationSubmitted {
        application_id,
        hunter: who.user_id,
        poster: poster().user_id,
        pitch: "I can do it".into(),
        at: t0(),
    }
}

fn withdrawn(application_id: Uuid, who: &Actor) -> BountyEvent {
    BountyEvent::ApplicationWithdrawn {
        application_id,
        hunter: who.user_id,
        poster: poster().user_id,
        at: t0(),
    }
}

fn accepted() -> BountyEvent {
    BountyEvent::ApplicationAccepted {
        application_id: APP,
        hunter: hunter().user_id,
        poster: poster().user_id,
        at: t0(),
    }
}

fn submitted(revision: u32) -> BountyEvent {
    BountyEvent::WorkSubmitted {
        hunter: hunter().user_id,
        poster: poster().user_id,
        text: Some("done".into()),
        link: Some("https://git.example/pr/1".into()),
        revision,
        at: t0(),
    }
}

fn rejected() -> BountyEvent {
    BountyEvent::WorkRejected {
        hunter: hunter().user_id,
        poster: poster().user_id,
        reason: "tests still fail".into(),
        at: t0(),
    }
}

fn approved() -> BountyEvent {
    BountyEvent::WorkApproved {
        hunter: hunter().user_id,
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    }
}

fn cancelled(
    by: &Actor,
    previous_status: BountyStatus,
    hunter: Option<Uuid>,
    refund: bool,
) -> BountyEvent {
    BountyEvent::BountyCancelled {
        poster: poster().user_id,
        cancelled_by: by.user_id,
        hunter,
        payment_id: PAYMENT,
        reward: reward(),
        previous_status,
        refund,
        at: t0(),
    }
}

fn disputed(by: &Actor, previous_status: BountyStatus) -> BountyEvent {
    BountyEvent::BountyDisputed {
        raised_by: by.user_id,
        poster: poster().user_id,
        hunter: hunter().user_id,
        reason: "unfair".into(),
        previous_status,
        at: t0(),
    }
}

fn resolved(outcome: DisputeOutcome) -> BountyEvent {
    BountyEvent::DisputeResolved {
        outcome,
        resolved_by: admin().user_id,
        poster: poster().user_id,
        hunter: hunter().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    }
}

fn expired(at: DateTime<Utc>) -> BountyEvent {
    BountyEvent::BountyExpired {
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at,
    }
}

fn paid() -> BountyEvent {
    BountyEvent::BountyPaid {
        hunter: hunter().user_id,
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    }
}

fn refunded() -> BountyEvent {
    BountyEvent::BountyRefunded {
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    }
}

fn apply(application_id: Uuid, who: Actor, at: DateTime<Utc>) -> BountyCommand {
    BountyCommand::Apply {
        application_id,
        hunter: who,
        pitch: Pitch::parse("I can do it").unwrap(),
        at,
    }
}

fn withdraw(application_id: Uuid, actor: Actor) -> BountyCommand {
    BountyCommand::WithdrawApplication {
        application_id,
        actor,
        at: t0(),
    }
}

fn accept(application_id: Uuid, actor: Actor) -> BountyCommand {
    BountyCommand::Accept {
        application_id,
        actor,
        at: t0(),
    }
}

fn submit(actor: Actor) -> BountyCommand {
    BountyCommand::Submit {
        deliverable: Deliverable::parse(Some("done"), Some("https://git.example/pr/1")).unwrap(),
        actor,
        at: t0(),
    }
}

fn approve(actor: Actor) -> BountyCommand {
    BountyCommand::Approve { actor, at: t0() }
}

fn reject(actor: Actor) -> BountyCommand {
    BountyCommand::Reject {
        reason: Reason::parse("tests still fail").unwrap(),
        actor,
        at: t0(),
    }
}

fn cancel(actor: Actor) -> BountyCommand {
    BountyCommand::Cancel { actor, at: t0() }
}

fn dispute(actor: Actor) -> BountyCommand {
    BountyCommand::Dispute {
        reason: Reason::parse("unfair").unwrap(),
        actor,
        at: t0(),
    }
}

fn resolve(outcome: DisputeOutcome, actor: Actor) -> BountyCommand {
    BountyCommand::Resolve {
        outcome,
        actor,
        at: t0(),
    }
}

fn mark_funded() -> BountyCommand {
    BountyCommand::MarkFunded { at: t0() }
}

fn mark_unfunded() -> BountyCommand {
    BountyCommand::MarkUnfunded {
        reason: Note::parse("insufficient_funds").unwrap(),
        at: t0(),
    }
}

fn open_bounty() -> Vec<BountyEvent> {
    vec![posted(), opened()]
}

fn with_application() -> Vec<BountyEvent> {
    vec![posted(), opened(), applied(APP, &hunter())]
}

fn assigned() -> Vec<BountyEvent> {
    vec![posted(), opened(), applied(APP, &hunter()), accepted()]
}

fn with_submission() -> Vec<BountyEvent> {
    let mut history = assigned();
    history.push(submitted(1));
    history
}

fn then(
    mut history: Vec<BountyEvent>,
    more: impl IntoIterator<Item = BountyEvent>,
) -> Vec<BountyEvent> {
    history.extend(more);
    history
}

// Posting and funding

#[test]
fn posting_a_bounty_records_it_as_funding_with_everything_the_board_shows() {
    BountyTest::with(())
        .given_no_previous_events()
        .when(post(Some(deadline())))
        .then_expect_events(vec![posted()]);
}

#[test]
fn a_bounty_needs_no_deadline() {
    BountyTest::with(())
        .given_no_previous_events()
        .when(post(None))
        .then_expect_events(vec![posted_with(None)]);
}

#[test]
fn a_deadline_that_is_not_in_the_future_is_refused() {
    for past in [t0(), t0() - Duration::seconds(1)] {
        BountyTest::with(())
            .given_no_previous_events()
            .when(post(Some(past)))
            .then_expect_error(BountyError::DeadlineInPast);
    }
}

#[test]
fn a_bounty_cannot_be_posted_twice() {
    BountyTest::with(())
        .given(vec![posted()])
        .when(post(None))
        .then_expect_error(BountyError::AlreadyExists);
}

#[test]
fn commands_on_a_missing_bounty_are_refused() {
    for command in [mark_funded(), apply(APP, hunter(), t0()), cancel(admin())] {
        BountyTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(BountyError::NotFound);
    }
}

#[test]
fn a_successful_escrow_hold_opens_the_bounty() {
    BountyTest::with(())
        .given(vec![posted()])
        .when(mark_funded())
        .then_expect_events(vec![opened()]);
}

#[test]
fn marking_funded_again_changes_nothing() {
    for history in [open_bounty(), assigned()] {
        BountyTest::with(())
            .given(history)
            .when(mark_funded())
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_rejected_escrow_hold_marks_the_bounty_unfunded() {
    BountyTest::with(())
        .given(vec![posted()])
        .when(mark_unfunded())
        .then_expect_events(vec![unfunded()]);
}

#[test]
fn marking_unfunded_again_changes_nothing() {
    BountyTest::with(())
        .given(vec![posted(), unfunded()])
        .when(mark_unfunded())
        .then_expect_events(vec![]);
}

#[test]
fn a_funded_bounty_cannot_become_unfunded() {
    BountyTest::with(())
        .given(open_bounty())
        .when(mark_unfunded())
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Open));
}

#[test]
fn an_unfunded_bounty_cannot_become_funded() {
    BountyTest::with(())
        .given(vec![posted(), unfunded()])
        .when(mark_funded())
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Unfunded));
}

#[test]
fn a_hold_that_succeeds_after_a_cancel_during_funding_asks_for_a_refund() {
    let cancelled_while_funding = cancelled(&poster(), BountyStatus::Funding, None, false);
    BountyTest::with(())
        .given(vec![posted(), cancelled_while_funding])
        .when(mark_funded())
        .then_expect_events(vec![BountyEvent::BountyFundedAfterCancel {
            poster: poster().user_id,
            payment_id: PAYMENT,
            reward: reward(),
            at: t0(),
        }]);
}

#[test]
fn a_hold_rejected_after_a_cancel_during_funding_owes_nothing() {
    let cancelled_while_funding = cancelled(&poster(), BountyStatus::Funding, None, false);
    BountyTest::with(())
        .given(vec![posted(), cancelled_while_funding])
        .when(mark_unfunded())
        .then_expect_events(vec![]);
}

// Applications

#[test]
fn a_member_applies_for_an_open_bounty_and_the_poster_is_named_for_notification() {
    BountyTest::with(())
        .given(open_bounty())
        .when(apply(APP, hunter(), t0()))
        .then_expect_events(vec![applied(APP, &hunter())]);
}

#[test]
fn the_poster_cannot_apply_for_their_own_bounty() {
    BountyTest::with(())
        .given(open_bounty())
        .when(apply(APP, poster(), t0()))
        .then_expect_error(BountyError::CannotApplyToOwnBounty);
}

#[test]
fn applications_are_taken_only_while_the_bounty_is_open() {
    for (history, status) in [
        (vec![posted()], BountyStatus::Funding),
        (vec![posted(), unfunded()], BountyStatus::Unfunded),
        (assigned(), BountyStatus::Assigned),
    ] {
        BountyTest::with(())
            .given(history)
            .when(apply(APP2, rival(), t0()))
            .then_expect_error(BountyError::NotOpen(status));
    }
}

#[test]
fn applications_after_the_deadline_are_refused() {
    BountyTest::with(())
        .given(open_bounty())
        .when(apply(APP, hunter(), deadline()))
        .then_expect_error(BountyError::DeadlinePassed);
}

#[test]
fn a_hunter_applies_only_once_per_bounty() {
    BountyTest::with(())
        .given(with_application())
        .when(apply(APP2, hunter(), t0()))
        .then_expect_error(BountyError::AlreadyApplied);
}

#[test]
fn a_withdrawn_application_may_apply_again() {
    BountyTest::with(())
        .given(then(with_application(), [withdrawn(APP, &hunter())]))
        .when(apply(APP2, hunter(), t0()))
        .then_expect_events(vec![applied(APP2, &hunter())]);
}

#[test]
fn an_application_id_cannot_be_reused() {
    BountyTest::with(())
        .given(with_application())
        .when(apply(APP, rival(), t0()))
        .then_expect_error(BountyError::ApplicationIdTaken);
}

#[test]
fn an_applicant_withdraws_a_pending_application() {
    BountyTest::with(())
        .given(with_application())
        .when(withdraw(APP, hunter()))
        .then_expect_events(vec![withdrawn(APP, &hunter())]);
}

#[test]
fn only_the_applicant_may_withdraw_an_application() {
    for actor in [poster(), rival(), admin()] {
        BountyTest::with(())
            .given(with_application())
            .when(withdraw(APP, actor))
            .then_expect_error(BountyError::NotApplicant);
    }
}

#[test]
fn an_unknown_application_cannot_be_withdrawn_or_accepted() {
    BountyTest::with(())
        .given(open_bounty())
        .when(withdraw(APP, hunter()))
        .then_expect_error(BountyError::UnknownApplication);
    BountyTest::with(())
        .given(open_bounty())
        .when(accept(APP, poster()))
        .then_expect_error(BountyError::UnknownApplication);
}

#[test]
fn a_withdrawn_application_cannot_be_withdrawn_again() {
    BountyTest::with(())
        .given(then(with_application(), [withdrawn(APP, &hunter())]))
        .when(withdraw(APP, hunter()))
        .then_expect_error(BountyError::ApplicationNotPending(
            ApplicationStatus::Withdrawn,
        ));
}

#[test]
fn applications_cannot_be_withdrawn_once_the_bounty_is_assigned() {
    let history = then(
        vec![
            posted(),
            opened(),
            applied(APP2, &rival()),
            applied(APP, &hunter()),
        ],
        [accepted()],
    );
    BountyTest::with(())
        .given(history)
        .when(withdraw(APP2, rival()))
        .then_expect_error(BountyError::NotOpen(BountyStatus::Assigned));
}

#[test]
fn the_poster_accepts_an_application_and_the_hunter_is_assigned() {
    BountyTest::with(())
        .given(with_application())
        .when(accept(APP, poster()))
        .then_expect_events(vec![accepted()]);
}

#[test]
fn only_the_poster_may_accept_an_application() {
    for actor in [hunter(), admin()] {
        BountyTest::with(())
            .given(with_application())
            .when(accept(APP, actor))
            .then_expect_error(BountyError::NotPoster);
    }
}

#[test]
fn a_withdrawn_application_cannot_be_accepted() {
    BountyTest::with(())
        .given(then(with_application(), [withdrawn(APP, &hunter())]))
        .when(accept(APP, poster()))
        .then_expect_error(BountyError::ApplicationNotPending(
            ApplicationStatus::Withdrawn,
        ));
}

#[test]
fn a_second_application_cannot_be_accepted_once_assigned() {
    let history = then(
        vec![
            posted(),
            opened(),
            applied(APP2, &rival()),
            applied(APP, &hunter()),
        ],
        [accepted()],
    );
    BountyTest::with(())
        .given(history)
        .when(accept(APP2, poster()))
        .then_expect_error(BountyError::NotOpen(BountyStatus::Assigned));
}

// Work

#[test]
fn the_assigned_hunter_submits_work() {
    BountyTest::with(())
        .given(assigned())
        .when(submit(hunter()))
        .then_expect_events(vec![submitted(1)]);
}

#[test]
fn only_the_assigned_hunter_may_submit() {
    for actor in [rival(), poster(), admin()] {
        BountyTest::with(())
            .given(assigned())
            .when(submit(actor))
            .then_expect_error(BountyError::NotHunter);
    }
    BountyTest::with(())
        .given(with_application())
        .when(submit(hunter()))
        .then_expect_error(BountyError::NotHunter);
}

#[test]
fn work_cannot_be_submitted_again_before_it_is_reviewed() {
    BountyTest::with(())
        .given(with_submission())
        .when(submit(hunter()))
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Submitted));
}

#[test]
fn rejected_work_is_resubmitted_as_the_next_revision() {
    BountyTest::with(())
        .given(then(with_submission(), [rejected()]))
        .when(submit(hunter()))
        .then_expect_events(vec![submitted(2)]);
}

#[test]
fn the_poster_approves_submitted_work_naming_hunter_payment_and_reward() {
    BountyTest::with(())
        .given(with_submission())
        .when(approve(poster()))
        .then_expect_events(vec![approved()]);
}

#[test]
fn only_the_poster_may_approve_or_reject() {
    for command in [
        approve(hunter()),
        approve(admin()),
        reject(hunter()),
        reject(admin()),
    ] {
        BountyTest::with(())
            .given(with_submission())
            .when(command)
            .then_expect_error(BountyError::NotPoster);
    }
}

#[test]
fn only_submitted_work_can_be_approved_or_rejected() {
    for command in [approve(poster()), reject(poster())] {
        BountyTest::with(())
            .given(assigned())
            .when(command)
            .then_expect_error(BountyError::WrongStatus(BountyStatus::Assigned));
    }
    BountyTest::with(())
        .given(then(with_submission(), [approved()]))
        .when(approve(poster()))
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Approved));
}

#[test]
fn the_poster_rejects_work_back_to_the_hunter_with_a_reason() {
    BountyTest::with(())
        .given(with_submission())
        .when(reject(poster()))
        .then_expect_events(vec![rejected()]);
}

// Cancelling

#[test]
fn the_poster_cancels_an_open_bounty_and_the_held_reward_is_refunded() {
    BountyTest::with(())
        .given(with_application())
        .when(cancel(poster()))
        .then_expect_events(vec![cancelled(&poster(), BountyStatus::Open, None, true)]);
}

#[test]
fn a_bounty_cancelled_before_its_hold_resolved_refunds_nothing_yet() {
    BountyTest::with(())
        .given(vec![posted()])
        .when(cancel(poster()))
        .then_expect_events(vec![cancelled(
            &poster(),
            BountyStatus::Funding,
            None,
            false,
        )]);
}

#[test]
fn an_unfunded_bounty_is_cancelled_without_a_refund() {
    BountyTest::with(())
        .given(vec![posted(), unfunded()])
        .when(cancel(poster()))
        .then_expect_events(vec![cancelled(
            &poster(),
            BountyStatus::Unfunded,
            None,
            false,
        )]);
}

#[test]
fn the_poster_cannot_cancel_once_a_hunter_is_assigned() {
    for (history, status) in [
        (assigned(), BountyStatus::Assigned),
        (with_submission(), BountyStatus::Submitted),
    ] {
        BountyTest::with(())
            .given(history)
            .when(cancel(poster()))
            .then_expect_error(BountyError::CannotCancel(status));
    }
}

#[test]
fn an_admin_cancels_an_assigned_bounty_and_the_reward_is_refunded() {
    BountyTest::with(())
        .given(assigned())
        .when(cancel(admin()))
        .then_expect_events(vec![cancelled(
            &admin(),
            BountyStatus::Assigned,
            Some(hunter().user_id),
            true,
        )]);
}

#[test]
fn nobody_but_the_poster_or_an_admin_may_cancel() {
    for actor in [hunter(), rival()] {
        BountyTest::with(())
            .given(with_application())
            .when(cancel(actor))
            .then_expect_error(BountyError::NotPoster);
    }
}

#[test]
fn a_bounty_whose_payout_is_under_way_or_that_ended_cannot_be_cancelled() {
    let cases = [
        (
            then(with_submission(), [approved()]),
            BountyStatus::Approved,
        ),
        (
            then(with_submission(), [approved(), paid()]),
            BountyStatus::Completed,
        ),
        (
            then(
                open_bounty(),
                [cancelled(&poster(), BountyStatus::Open, None, true)],
            ),
            BountyStatus::Cancelled,
        ),
        (
            then(open_bounty(), [expired(deadline())]),
            BountyStatus::Expired,
        ),
    ];
    for (history, status) in cases {
        BountyTest::with(())
            .given(history)
            .when(cancel(admin()))
            .then_expect_error(BountyError::CannotCancel(status));
    }
}

// Disputes

#[test]
fn the_hunter_disputes_submitted_work() {
    BountyTest::with(())
        .given(with_submission())
        .when(dispute(hunter()))
        .then_expect_events(vec![disputed(&hunter(), BountyStatus::Submitted)]);
}

#[test]
fn the_poster_disputes_an_assigned_bounty() {
    BountyTest::with(())
        .given(assigned())
        .when(dispute(poster()))
        .then_expect_events(vec![disputed(&poster(), BountyStatus::Assigned)]);
}

#[test]
fn only_the_poster_or_the_hunter_may_dispute() {
    for actor in [rival(), admin()] {
        BountyTest::with(())
            .given(with_submission())
            .when(dispute(actor))
            .then_expect_error(BountyError::NotParty);
    }
}

#[test]
fn a_dispute_needs_an_assigned_or_submitted_bounty() {
    for (history, status) in [
        (with_application(), BountyStatus::Open),
        (
            then(with_submission(), [approved()]),
            BountyStatus::Approved,
        ),
        (
            then(
                with_submission(),
                [disputed(&hunter(), BountyStatus::Submitted)],
            ),
            BountyStatus::Disputed,
        ),
    ] {
        BountyTest::with(())
            .given(history)
            .when(dispute(poster()))
            .then_expect_error(BountyError::WrongStatus(status));
    }
}

#[test]
fn an_admin_resolves_a_dispute_for_either_side() {
    for outcome in [DisputeOutcome::PayHunter, DisputeOutcome::RefundPoster] {
        BountyTest::with(())
            .given(then(
                with_submission(),
                [disputed(&hunter(), BountyStatus::Submitted)],
            ))
            .when(resolve(outcome, admin()))
            .then_expect_events(vec![resolved(outcome)]);
    }
}

#[test]
fn only_an_admin_may_resolve_a_dispute() {
    for actor in [poster(), hunter()] {
        BountyTest::with(())
            .given(then(
                with_submission(),
                [disputed(&hunter(), BountyStatus::Submitted)],
            ))
            .when(resolve(DisputeOutcome::PayHunter, actor))
            .then_expect_error(BountyError::NotAllowed);
    }
}

#[test]
fn only_a_disputed_bounty_can_be_resolved() {
    BountyTest::with(())
        .given(with_submission())
        .when(resolve(DisputeOutcome::RefundPoster, admin()))
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Submitted));
}

#[test]
fn an_admin_may_cancel_a_disputed_bounty_with_a_refund() {
    BountyTest::with(())
        .given(then(
            with_submission(),
            [disputed(&hunter(), BountyStatus::Submitted)],
        ))
        .when(cancel(admin()))
        .then_expect_events(vec![cancelled(
            &admin(),
            BountyStatus::Disputed,
            Some(hunter().user_id),
            true,
        )]);
}

// Expiry

#[test]
fn an_open_bounty_past_its_deadline_expires() {
    BountyTest::with(())
        .given(with_application())
        .when(BountyCommand::Expire { at: deadline() })
        .then_expect_events(vec![expired(deadline())]);
}

#[test]
fn a_bounty_expires_only_when_open_past_its_deadline() {
    let early = deadline() - Duration::seconds(1);
    let late = deadline() + Duration::days(1);
    for (history, at) in [
        (open_bounty(), early),
        (vec![posted_with(None), opened()], late),
        (vec![posted()], late),
        (assigned(), late),
    ] {
        BountyTest::with(())
            .given(history)
            .when(BountyCommand::Expire { at })
            .then_expect_error(BountyError::NotExpirable);
    }
}

#[test]
fn expiring_again_changes_nothing() {
    BountyTest::with(())
        .given(then(open_bounty(), [expired(deadline())]))
        .when(BountyCommand::Expire { at: deadline() })
        .then_expect_events(vec![]);
}

// Settlement

#[test]
fn an_approved_bounty_is_completed_once_the_hunter_is_paid() {
    for history in [
        then(with_submission(), [approved()]),
        then(
            with_submission(),
            [
                disputed(&hunter(), BountyStatus::Submitted),
                resolved(DisputeOutcome::PayHunter),
            ],
        ),
    ] {
        BountyTest::with(())
            .given(history)
            .when(BountyCommand::MarkPaid { at: t0() })
            .then_expect_events(vec![paid()]);
    }
}

#[test]
fn marking_paid_again_changes_nothing() {
    BountyTest::with(())
        .given(then(with_submission(), [approved(), paid()]))
        .when(BountyCommand::MarkPaid { at: t0() })
        .then_expect_events(vec![]);
}

#[test]
fn only_an_approved_bounty_can_be_marked_paid() {
    BountyTest::with(())
        .given(with_submission())
        .when(BountyCommand::MarkPaid { at: t0() })
        .then_expect_error(BountyError::WrongStatus(BountyStatus::Submitted));
}

#[test]
fn a_bounty_that_ended_with_its_reward_held_is_marked_refunded() {
    let cancelled_while_funding = cancelled(&poster(), BountyStatus::Funding, None, false);
    let late_funding = BountyEvent::BountyFundedAfterCancel {
        poster: poster().user_id,
        payment_id: PAYMENT,
        reward: reward(),
        at: t0(),
    };
    for history in [
        then(
            open_bounty(),
            [cancelled(&poster(), BountyStatus::Open, None, true)],
        ),
        then(open_bounty(), [expired(deadline())]),
        then(
            with_submission(),
            [
                disputed(&hunter(), BountyStatus::Submitted),
                resolved(DisputeOutcome::RefundPoster),
            ],
        ),
        vec![posted(), cancelled_while_funding, late_funding],
    ] {
        BountyTest::with(())
            .given(history)
            .when(BountyCommand::MarkRefunded { at: t0() })
            .then_expect_events(vec![refunded()]);
    }
}

#[test]
fn marking_refunded_again_changes_nothing_and_the_state_remembers_it() {
    let history = then(open_bounty(), [expired(deadline()), refunded()]);
    BountyTest::with(())
        .given(history.clone())
        .when(BountyCommand::MarkRefunded { at: t0() })
        .then_expect_events(vec![]);
    let mut bounty = Bounty::default();
    history.into_iter().for_each(|e| bounty.apply(e));
    let state = bounty.state.unwrap();
    assert!(state.refunded);
    assert_eq!(state.status, BountyStatus::Expired);
}

#[test]
fn marking_refunded_is_refused_when_no_refund_is_due() {
    for history in [
        open_bounty(),
        vec![
            posted(),
            cancelled(&poster(), BountyStatus::Funding, None, false),
        ],
        vec![
            posted(),
            unfunded(),
            cancelled(&poster(), BountyStatus::Unfunded, None, false),
        ],
    ] {
        BountyTest::with(())
            .given(history)
            .when(BountyCommand::MarkRefunded { at: t0() })
            .then_expect_error(BountyError::NoRefundDue);
    }
}

// Stored form and process-manager hints

#[test]
fn payout_and_refund_are_asked_for_by_exactly_the_documented_events() {
    assert!(approved().requires_payout());
    assert!(resolved(DisputeOutcome::PayHunter).requires_payout());
    assert!(!resolved(DisputeOutcome::PayHunter).requires_refund());
    assert!(resolved(DisputeOutcome::RefundPoster).requires_refund());
    assert!(expired(deadline()).requires_refund());
    assert!(cancelled(&poster(), BountyStatus::Open, None, true).requires_refund());
    assert!(!cancelled(&poster(), BountyStatus::Funding, None, false).requires_refund());
    for quiet in [
        posted(),
        opened(),
        accepted(),
        submitted(1),
        paid(),
        refunded(),
    ] {
        assert!(
            !quiet.requires_payout() && !quiet.requires_refund(),
            "{quiet:?}"
        );
    }
}

#[test]
fn event_types_are_the_variant_names_at_version_one() {
    assert_eq!(posted().event_type(), "BountyPosted");
    assert_eq!(
        resolved(DisputeOutcome::PayHunter).event_type(),
        "DisputeResolved"
    );
    assert_eq!(approved().event_version(), "1");
    let json = serde_json::to_value(approved()).unwrap();
    assert_eq!(
        json["WorkApproved"]["reward"],
        serde_json::json!({"amount": 5000, "currency": "USD"})
    );
    for status in BountyStatus::ALL {
        assert_eq!(BountyStatus::parse(status.as_str()), Some(status));
    }
}
