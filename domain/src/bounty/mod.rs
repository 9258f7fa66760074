//! A bounty: posted work whose reward is escrowed from the poster's wallet and paid to the
//! hunter whose work the poster approves.
//!
//! Lifecycle: `funding` (posted; the escrow hold is under way) → `open` once held, or
//! `unfunded` if the wallet could not cover it. While open, members apply and the poster
//! accepts one application: `assigned` → `submitted` → `approved` (payout under way) →
//! `completed`, with a rejection sending it back to `assigned`. A party can dispute an
//! assigned or submitted bounty, and an admin resolves it by paying the hunter (→ `approved`)
//! or refunding the poster (→ `cancelled`). Cancellation and expiry end it as `cancelled` or
//! `expired`; `refunded` records that the escrow went back.
//!
//! Money never moves here: a process manager reads these events and drives the payment and
//! the wallets. Its rules, which the events make explicit:
//! - release the escrow to the hunter on [`BountyEvent::requires_payout`]: `WorkApproved`, or
//!   `DisputeResolved { PayHunter }`; then `MarkPaid`;
//! - refund it to the poster on [`BountyEvent::requires_refund`]: `BountyCancelled { refund:
//!   true }`, `BountyExpired`, `DisputeResolved { RefundPoster }`, or
//!   `BountyFundedAfterCancel`; then `MarkRefunded`.
//!
//! A bounty cancelled while `funding` records `refund: false`, because nothing is held yet.
//! If its hold then succeeds, `MarkFunded` does not open it but records
//! `BountyFundedAfterCancel`, which asks for the refund; if the hold is rejected, nothing is
//! owed. So whichever way the race between cancel and hold goes, the reward is refunded
//! exactly when it was held, and the bounty (one aggregate, versioned) is where that is
//! decided once.

mod command;
mod decide;
mod error;
mod event;
mod values;

pub use command::{BountyCommand, PostBounty};
pub use error::BountyError;
pub use event::BountyEvent;
pub use values::{Deliverable, Link, Tag, Tags};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

use crate::money::Money;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BountyStatus {
    /// Posted; the escrow hold is under way.
    Funding,
    Open,
    /// The poster's wallet could not cover the reward.
    Unfunded,
    Assigned,
    Submitted,
    /// The poster approved the work (or an admin ruled for the hunter): payout under way.
    Approved,
    Disputed,
    /// The hunter was paid.
    Completed,
    /// Cancelled, or a dispute ruled for the poster; any held reward is refunded.
    Cancelled,
    /// Open past its deadline with nobody assigned; the reward is refunded.
    Expired,
}

impl BountyStatus {
    pub const ALL: [BountyStatus; 10] = [
        BountyStatus::Funding,
        BountyStatus::Open,
        BountyStatus::Unfunded,
        BountyStatus::Assigned,
        BountyStatus::Submitted,
        BountyStatus::Approved,
        BountyStatus::Disputed,
        BountyStatus::Completed,
        BountyStatus::Cancelled,
        BountyStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BountyStatus::Funding => "funding",
            BountyStatus::Open => "open",
            BountyStatus::Unfunded => "unfunded",
            BountyStatus::Assigned => "assigned",
            BountyStatus::Submitted => "submitted",
            BountyStatus::Approved => "approved",
            BountyStatus::Disputed => "disputed",
            BountyStatus::Completed => "completed",
            BountyStatus::Cancelled => "cancelled",
            BountyStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<BountyStatus> {
        BountyStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for BountyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an admin settles a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    PayHunter,
    RefundPoster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Withdrawn,
    Accepted,
}

impl fmt::Display for ApplicationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplicationStatus::Pending => "pending",
            ApplicationStatus::Withdrawn => "withdrawn",
            ApplicationStatus::Accepted => "accepted",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub hunter: Uuid,
    pub status: ApplicationStatus,
}

/// Where the escrow hold of the reward stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Funding {
    Pending,
    Held,
    Rejected,
}

/// The bounty aggregate's state, folded from its events. `None` until it is posted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bounty {
    pub state: Option<BountyState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BountyState {
    pub poster: Uuid,
    pub payment_id: Uuid,
    pub reward: Money,
    pub deadline: Option<DateTime<Utc>>,
    pub status: BountyStatus,
    pub funding: Funding,
    pub applications: BTreeMap<Uuid, Application>,
    /// The hunter whose application was accepted.
    pub hunter: Option<Uuid>,
    pub submissions: u32,
    /// The held reward went back to the poster.
    pub refunded: bool,
}

impl BountyState {
    /// A refund is owed once the bounty ended without a payout while its reward was held.
    pub fn refund_due(&self) -> bool {
        self.funding == Funding::Held
            && matches!(self.status, BountyStatus::Cancelled | BountyStatus::Expired)
    }
}

impl Aggregate for Bounty {
    const TYPE: &'static str = "Bounty";
    type Command = BountyCommand;
    type Event = BountyEvent;
    type Error = BountyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: BountyCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), BountyError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: BountyEvent) {
        if let BountyEvent::BountyPosted {
            poster,
            payment_id,
            reward,
            deadline,
            ..
        } = &event
        {
            self.state = Some(BountyState {
                poster: *poster,
                payment_id: *payment_id,
                reward: *reward,
                deadline: *deadline,
                status: BountyStatus::Funding,
                funding: Funding::Pending,
                applications: BTreeMap::new(),
                hunter: None,
                submissions: 0,
                refunded: false,
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match &event {
            BountyEvent::BountyOpened { .. } | BountyEvent::BountyFundedAfterCancel { .. } => {
                state.funding = Funding::Held;
            }
            BountyEvent::BountyUnfunded { .. } => state.funding = Funding::Rejected,
            BountyEvent::ApplicationSubmitted {
                application_id,
                hunter,
                ..
            } => {
                let application = Application {
                    hunter: *hunter,
                    status: ApplicationStatus::Pending,
                };
                state.applications.insert(*application_id, application);
            }
            BountyEvent::ApplicationWithdrawn { application_id, .. } => {
                if let Some(application) = state.applications.get_mut(application_id) {
                    application.status = ApplicationStatus::Withdrawn;
                }
            }
            BountyEvent::ApplicationAccepted {
                application_id,
                hunter,
                ..
            } => {
                if let Some(application) = state.applications.get_mut(application_id) {
                    application.status = ApplicationStatus::Accepted;
                }
                state.hunter = Some(*hunter);
            }
            BountyEvent::WorkSubmitted { revision, .. } => state.submissions = *revision,
            BountyEvent::BountyRefunded { .. } => state.refunded = true,
            _ => {}
        }
        if let Some(status) = event.status_after() {
            state.status = status;
        }
    }
}

#[cfg(test)]
mod tests;
