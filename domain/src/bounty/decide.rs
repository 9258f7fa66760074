//! The bounty's rules: which events each command produces, or why it is refused. Pure.
//!
//! Person-facing commands check who acts first (`Not*` errors), then what the bounty's state
//! allows. Commands from process managers and the scheduler (`Mark*`, `Expire`) change
//! nothing when repeated.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    ApplicationStatus, Bounty, BountyCommand, BountyError, BountyEvent, BountyState, BountyStatus,
    Deliverable, DisputeOutcome, Funding, PostBounty,
};
use crate::values::{Note, Pitch, Reason};
use crate::Actor;

type Decision = Result<Vec<BountyEvent>, BountyError>;

impl Bounty {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: BountyCommand) -> Decision {
        match (&self.state, command) {
            (None, BountyCommand::Post(post)) => posted(post),
            (Some(_), BountyCommand::Post(_)) => Err(BountyError::AlreadyExists),
            (None, _) => Err(BountyError::NotFound),
            (Some(state), command) => state.decide(command),
        }
    }
}

fn posted(post: PostBounty) -> Decision {
    if post.deadline.is_some_and(|deadline| deadline <= post.at) {
        return Err(BountyError::DeadlineInPast);
    }
    Ok(vec![BountyEvent::BountyPosted {
        poster: post.poster.user_id,
        payment_id: post.payment_id,
        title: post.title.as_str().to_owned(),
        description: post.description.as_str().to_owned(),
        reward: post.reward,
        deadline: post.deadline,
        tags: post.tags.to_strings(),
        at: post.at,
    }])
}

impl BountyState {
    fn decide(&self, command: BountyCommand) -> Decision {
        match command {
            BountyCommand::Post(_) => Err(BountyError::AlreadyExists),
            BountyCommand::MarkFunded { at } => self.mark_funded(at),
            BountyCommand::MarkUnfunded { reason, at } => self.mark_unfunded(reason, at),
            BountyCommand::Apply {
                application_id,
                hunter,
                pitch,
                at,
            } => self.apply_for(application_id, &hunter, pitch, at),
            BountyCommand::WithdrawApplication {
                application_id,
                actor,
                at,
            } => self.withdraw_application(application_id, &actor, at),
            BountyCommand::Accept {
                application_id,
                actor,
                at,
            } => self.accept(application_id, &actor, at),
            BountyCommand::Submit {
                deliverable,
                actor,
                at,
            } => self.submit(deliverable, &actor, at),
            BountyCommand::Approve { actor, at } => self.approve(&actor, at),
            BountyCommand::Reject { reason, actor, at } => self.reject(reason, &actor, at),
            BountyCommand::Cancel { actor, at } => self.cancel(&actor, at),
            BountyCommand::Dispute { reason, actor, at } => self.dispute(reason, &actor, at),
            BountyCommand::Resolve { outcome, actor, at } => self.resolve(outcome, &actor, at),
            BountyCommand::Expire { at } => self.expire(at),
            BountyCommand::MarkPaid { at } => self.mark_paid(at),
            BountyCommand::MarkRefunded { at } => self.mark_refunded(at),
        }
    }

    fn mark_funded(&self, at: DateTime<Utc>) -> Decision {
        match (self.funding, self.status) {
            (Funding::Held, _) => Ok(vec![]),
            (Funding::Pending, BountyStatus::Funding) => Ok(vec![BountyEvent::BountyOpened {
                poster: self.poster,
                payment_id: self.payment_id,
                reward: self.reward,
                at,
            }]),
            // Cancelled before the hold succeeded: the reward is now held for nothing.
            (Funding::Pending, BountyStatus::Cancelled) => {
                Ok(vec![BountyEvent::BountyFundedAfterCancel {
                    poster: self.poster,
                    payment_id: self.payment_id,
                    reward: self.reward,
                    at,
                }])
            }
            (_, status) => Err(BountyError::WrongStatus(status)),
        }
    }

    fn mark_unfunded(&self, reason: Note, at: DateTime<Utc>) -> Decision {
        match (self.funding, self.status) {
            (Funding::Rejected, _) => Ok(vec![]),
            (Funding::Pending, BountyStatus::Funding) => Ok(vec![BountyEvent::BountyUnfunded {
                poster: self.poster,
                payment_id: self.payment_id,
                reward: self.reward,
                reason: reason.as_str().to_owned(),
                at,
            }]),
            // Cancelled before the hold was refused: nothing was held, so nothing is owed.
            (Funding::Pending, BountyStatus::Cancelled) => Ok(vec![]),
            (_, status) => Err(BountyError::WrongStatus(status)),
        }
    }

    fn apply_for(
        &self,
        application_id: Uuid,
        hunter: &Actor,
        pitch: Pitch,
        at: DateTime<Utc>,
    ) -> Decision {
        if hunter.user_id == self.poster {
            return Err(BountyError::CannotApplyToOwnBounty);
        }
        self.require_open()?;
        if self.deadline.is_some_and(|deadline| deadline <= at) {
            return Err(BountyError::DeadlinePassed);
        }
        let applied = self
            .applications
            .values()
            .any(|a| a.hunter == hunter.user_id && a.status != ApplicationStatus::Withdrawn);
        if applied {
            return Err(BountyError::AlreadyApplied);
        }
        if self.applications.contains_key(&application_id) {
            return Err(BountyError::ApplicationIdTaken);
        }
        Ok(vec![BountyEvent::ApplicationSubmitted {
            application_id,
            hunter: hunter.user_id,
            poster: self.poster,
            pitch: pitch.as_str().to_owned(),
            at,
        }])
    }

    fn withdraw_application(
        &self,
        application_id: Uuid,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Decision {
        let application = self
            .applications
            .get(&application_id)
            .ok_or(BountyError::UnknownApplication)?;
        if application.hunter != actor.user_id {
            return Err(BountyError::NotApplicant);
        }
        self.require_open()?;
        if application.status != ApplicationStatus::Pending {
            return Err(BountyError::ApplicationNotPending(application.status));
        }
        Ok(vec![BountyEvent::ApplicationWithdrawn {
            application_id,
            hunter: application.hunter,
            poster: self.poster,
            at,
        }])
    }

    fn accept(&self, application_id: Uuid, actor: &Actor, at: DateTime<Utc>) -> Decision {
        self.require_poster(actor)?;
        self.require_open()?;
        let application = self
            .applications
            .get(&application_id)
            .ok_or(BountyError::UnknownApplication)?;
        if application.status != ApplicationStatus::Pending {
            return Err(BountyError::ApplicationNotPending(application.status));
        }
        Ok(vec![BountyEvent::ApplicationAccepted {
            application_id,
            hunter: application.hunter,
            poster: self.poster,
            at,
        }])
    }

    fn submit(&self, deliverable: Deliverable, actor: &Actor, at: DateTime<Utc>) -> Decision {
        let hunter = self.require_hunter(actor)?;
        self.require_status(BountyStatus::Assigned)?;
        Ok(vec![BountyEvent::WorkSubmitted {
            hunter,
            poster: self.poster,
            text: deliverable.text().map(str::to_owned),
            link: deliverable.link().map(str::to_owned),
            revision: self.submissions + 1,
            at,
        }])
    }

    fn approve(&self, actor: &Actor, at: DateTime<Utc>) -> Decision {
        self.require_poster(actor)?;
        self.require_status(BountyStatus::Submitted)?;
        Ok(vec![BountyEvent::WorkApproved {
            hunter: self.assigned_hunter()?,
            poster: self.poster,
            payment_id: self.payment_id,
            reward: self.reward,
            at,
        }])
    }

    fn reject(&self, reason: Reason, actor: &Actor, at: DateTime<Utc>) -> Decision {
        self.require_poster(actor)?;
        self.require_status(BountyStatus::Submitted)?;
        Ok(vec![BountyEvent::WorkRejected {
            hunter: self.assigned_hunter()?,
            poster: self.poster,
            reason: reason.as_str().to_owned(),
            at,
        }])
    }

    /// The poster may cancel until someone is assigned; an admin also afterwards, until the
    /// bounty ends or its payout is under way (`approved`: the release has been asked for, and
    /// a payment resolves only once).
    fn cancel(&self, actor: &Actor, at: DateTime<Utc>) -> Decision {
        let by_admin = actor.is_admin();
        if actor.user_id != self.poster && !by_admin {
            return Err(BountyError::NotPoster);
        }
        let allowed = match self.status {
            BountyStatus::Funding | BountyStatus::Open | BountyStatus::Unfunded => true,
            BountyStatus::Assigned | BountyStatus::Submitted | BountyStatus::Disputed => by_admin,
            BountyStatus::Approved
            | BountyStatus::Completed
            | BountyStatus::Cancelled
            | BountyStatus::Expired => false,
        };
        if !allowed {
            return Err(BountyError::CannotCancel(self.status));
        }
        Ok(vec![BountyEvent::BountyCancelled {
            poster: self.poster,
            cancelled_by: actor.user_id,
            hunter: self.hunter,
            payment_id: self.payment_id,
            reward: self.reward,
            previous_status: self.status,
            // While `funding` nothing is held yet; see the module's note on a late hold.
            refund: self.funding == Funding::Held,
            at,
        }])
    }

    fn dispute(&self, reason: Reason, actor: &Actor, at: DateTime<Utc>) -> Decision {
        let is_party = actor.user_id == self.poster || Some(actor.user_id) == self.hunter;
        if !is_party {
            return Err(BountyError::NotParty);
        }
        if !matches!(
            self.status,
            BountyStatus::Assigned | BountyStatus::Submitted
        ) {
            return Err(BountyError::WrongStatus(self.status));
        }
        Ok(vec![BountyEvent::BountyDisputed {
            raised_by: actor.user_id,
            poster: self.poster,
            hunter: self.assigned_hunter()?,
            reason: reason.as_str().to_owned(),
            previous_status: self.status,
            at,
        }])
    }

    fn resolve(&self, outcome: DisputeOutcome, actor: &Actor, at: DateTime<Utc>) -> Decision {
        if !actor.is_admin() {
            return Err(BountyError::NotAllowed);
        }
        self.require_status(BountyStatus::Disputed)?;
        Ok(vec![BountyEvent::DisputeResolved {
            outcome,
            resolved_by: actor.user_id,
            poster: self.poster,
            hunter: self.assigned_hunter()?,
            payment_id: self.payment_id,
            reward: self.reward,
            at,
        }])
    }

    fn expire(&self, at: DateTime<Utc>) -> Decision {
        if self.status == BountyStatus::Expired {
            return Ok(vec![]);
        }
        let past_deadline = self.deadline.is_some_and(|deadline| deadline <= at);
        if self.status != BountyStatus::Open || !past_deadline {
            return Err(BountyError::NotExpirable);
        }
        Ok(vec![BountyEvent::BountyExpired {
            poster: self.poster,
            payment_id: self.payment_id,
            reward: self.reward,
            at,
        }])
    }

    fn mark_paid(&self, at: DateTime<Utc>) -> Decision {
        match self.status {
            BountyStatus::Completed => Ok(vec![]),
            BountyStatus::Approved => Ok(vec![BountyEvent::BountyPaid {
                hunter: self.assigned_hunter()?,
                poster: self.poster,
                payment_id: self.payment_id,
                reward: self.reward,
                at,
            }]),
            status => Err(BountyError::WrongStatus(status)),
        }
    }

    fn mark_refunded(&self, at: DateTime<Utc>) -> Decision {
        if self.refunded {
            return Ok(vec![]);
        }
        if !self.refund_due() {
            return Err(BountyError::NoRefundDue);
        }
        Ok(vec![BountyEvent::BountyRefunded {
            poster: self.poster,
            payment_id: self.payment_id,
            reward: self.reward,
            at,
        }])
    }

    fn require_poster(&self, actor: &Actor) -> Result<(), BountyError> {
        if actor.user_id != self.poster {
            return Err(BountyError::NotPoster);
        }
        Ok(())
    }

    /// The assigned hunter's id, if `actor` is that hunter.
    fn require_hunter(&self, actor: &Actor) -> Result<Uuid, BountyError> {
        match self.hunter {
            Some(hunter) if hunter == actor.user_id => Ok(hunter),
            _ => Err(BountyError::NotHunter),
        }
    }

    fn require_open(&self) -> Result<(), BountyError> {
        if self.status != BountyStatus::Open {
            return Err(BountyError::NotOpen(self.status));
        }
        Ok(())
    }

    fn require_status(&self, wanted: BountyStatus) -> Result<(), BountyError> {
        if self.status != wanted {
            return Err(BountyError::WrongStatus(self.status));
        }
        Ok(())
    }

    /// The hunter of a bounty in a status that has one; a bounty in such a status without
    /// one is refused rather than trusted.
    fn assigned_hunter(&self) -> Result<Uuid, BountyError> {
        self.hunter.ok_or(BountyError::WrongStatus(self.status))
    }
}
