//! Process managers: the sagas that move money between bounties, payments and wallets.
//!
//! They run as one more consumer of the event stream, through the same checkpointed runner
//! as the projections, and react to events with follow-up commands. Every follow-up names a
//! deterministic target (the bounty's payment id, the payer's or payee's wallet) and every
//! target treats a repeat as done, so a redelivery, a retry or a crash half way through a
//! flow never moves money twice; running again simply completes the flow.
//!
//! The flows, one per payment:
//! - funding: BountyPosted → Payment.Request → Wallet.HoldFunds → (FundsHeld) Payment.MarkHeld
//!   → Bounty.MarkFunded; or (HoldRejected) Payment.MarkHoldFailed → Bounty.MarkUnfunded.
//! - payout: WorkApproved / DisputeResolved(pay) → Payment.Release → payee Wallet.ReceivePayment,
//!   payer Wallet.ReleaseHold, Payment.MarkReleased → Bounty.MarkPaid.
//! - refund: BountyCancelled(refund) / BountyExpired / DisputeResolved(refund) /
//!   BountyFundedAfterCancel → Payment.Refund → payer Wallet.RefundHold, Payment.MarkRefunded
//!   → Bounty.MarkRefunded.
//!
//! And one that is not about money: an erased person's scrub (`erasures`), finished here if the
//! erasing process stopped after appending `PersonErased`.

mod erasures;
pub mod flows;

use async_trait::async_trait;
use bountyline_domain::bounty::{BountyCommand, BountyEvent, DisputeOutcome};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::payment::{PaymentCommand, PaymentEvent};
use bountyline_domain::values::Note;
use bountyline_domain::wallet::{WalletCommand, WalletEvent};
use bountyline_projections::{Projection, ProjectionError, StoredEvent};
use chrono::Utc;
use futures::StreamExt;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::commands::{CommandBus, CommandContext, CommandError, Committed};
use crate::privacy::Keyring;
use flows::{Moved, Progress};

pub struct ProcessManagers {
    commands: CommandBus,
    keyring: Keyring,
}

impl ProcessManagers {
    pub fn new(commands: CommandBus, keyring: Keyring) -> Self {
        Self { commands, keyring }
    }
}

/// One follow-up command.
enum Step {
    Bounty(Uuid, BountyCommand),
    Payment(Uuid, PaymentCommand),
    Wallet(Uuid, WalletCommand),
}

#[async_trait]
impl Projection for ProcessManagers {
    fn name(&self) -> &'static str {
        "process-managers"
    }

    /// Process managers own no read model: they are never rebuilt.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// One event: a batch of one, so its steps run one after another.
    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    /// A batch: progress is recorded in position order, and the follow-up commands run in
    /// lanes. Reactions that share a flow or any target (a payment, a bounty, a wallet) share
    /// a lane and run in position order, exactly as one by one; lanes have nothing in common,
    /// so they run side by side and their commands commit together.
    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        erasures::finish(tx, &self.keyring, events).await?;
        let (mut moves, mut follow_ups) = (Vec::new(), Vec::new());
        for event in events {
            let Some((progress, steps)) = react(event)? else {
                continue;
            };
            let flow = progress.flow;
            moves.push(Moved {
                position: event.position,
                progress,
            });
            if !steps.is_empty() {
                follow_ups.push(FollowUp {
                    flow,
                    position: event.position,
                    ctx: CommandContext::follow_up(event),
                    steps,
                });
            }
        }
        flows::record(tx, &moves).await?;
        let lanes = lanes(follow_ups);
        let started = std::time::Instant::now();
        let (lane_count, longest) = (
            lanes.len(),
            lanes
                .iter()
                .map(|l| l.iter().map(|f| f.steps.len()).sum::<usize>())
                .max(),
        );
        let outcomes: Vec<_> = futures::stream::iter(lanes)
            .map(|lane| self.run_lane(lane))
            .buffer_unordered(LANES_AT_ONCE)
            .collect()
            .await;
        tracing::debug!(
            events = events.len(),
            lanes = lane_count,
            longest_lane_steps = longest.unwrap_or(0),
            ms = started.elapsed().as_millis() as u64,
            "process managers ran a batch's follow-ups"
        );
        for outcome in outcomes {
            for (flow, position, refusal) in outcome? {
                note_refusal(tx, flow, position, &refusal).await?;
            }
        }
        Ok(())
    }
}

/// Lanes of one batch run at once at most; each runs one command at a time. Their commands
/// meet in the committer's groups, so more lanes at once cost little more than one. A batch
/// under the held load has about 130 lanes (one per payer, mostly): with 64 at once it ran in
/// two rounds of group commits. The committer's group cap is the same number.
const LANES_AT_ONCE: usize = 256;

/// One event's follow-up: its flow, position, context and steps.
struct FollowUp {
    flow: Uuid,
    position: i64,
    ctx: CommandContext,
    steps: Vec<Step>,
}

impl FollowUp {
    /// What this follow-up touches: its flow and every aggregate its steps command.
    fn keys(&self) -> impl Iterator<Item = Uuid> + '_ {
        std::iter::once(self.flow).chain(self.steps.iter().map(|step| match step {
            Step::Bounty(id, _) | Step::Payment(id, _) | Step::Wallet(id, _) => *id,
        }))
    }
}

/// Groups follow-ups that share a key into lanes, each in position order.
fn lanes(follow_ups: Vec<FollowUp>) -> Vec<Vec<FollowUp>> {
    let mut lanes: Vec<Vec<FollowUp>> = Vec::new();
    let mut lane_of: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for reaction in follow_ups {
        let mut found: Vec<usize> = reaction
            .keys()
            .filter_map(|k| lane_of.get(&k).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        let lane = match found.split_first() {
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
            Some((&first, rest)) => {
                // A follow-up linking lanes merges them; the emptied lanes stay, unused.
                for &other in rest {
                    let moved = std::mem::take(&mut lanes[other]);
                    lanes[first].extend(moved);
                }
                for index in lane_of.values_mut() {
                    if rest.contains(index) {
                        *index = first;
                    }
                }
                first
            }
        };
        for key in reaction.keys() {
            lane_of.insert(key, lane);
        }
        lanes[lane].push(reaction);
    }
    lanes.retain(|lane| !lane.is_empty());
    for lane in &mut lanes {
        lane.sort_by_key(|r| r.position);
    }
    lanes
}

/// Not a fault of the event: the flow is left open with the reason, and shows up as stuck to
/// an operator if nothing moves it on.
async fn note_refusal(
    tx: &mut Transaction<'static, Postgres>,
    flow: Uuid,
    position: i64,
    refusal: &str,
) -> Result<(), ProjectionError> {
    tracing::warn!(flow = %flow, position, refusal = %refusal,
        "a process manager's command was refused");
    flows::note_error(tx, flow, refusal).await?;
    Ok(())
}

impl ProcessManagers {
    /// Runs a lane's steps one after another; answers the refusals met on the way.
    async fn run_lane(
        &self,
        lane: Vec<FollowUp>,
    ) -> Result<Vec<(Uuid, i64, String)>, ProjectionError> {
        let mut refusals = Vec::new();
        for reaction in lane {
            for step in reaction.steps {
                if let Err(refusal) = self.run(step, &reaction.ctx).await? {
                    refusals.push((reaction.flow, reaction.position, refusal));
                }
            }
        }
        Ok(refusals)
    }

    /// Runs one step. `Ok(Err(reason))` is a refusal. A concurrency conflict has already been
    /// retried by the command bus, many times for a follow-up (`CommandContext::follow_up`);
    /// one that outlasts it fails the batch as transient, and the runner tries the batch again
    /// after a pause.
    async fn run(
        &self,
        step: Step,
        ctx: &CommandContext,
    ) -> Result<Result<(), String>, ProjectionError> {
        let outcome = match step {
            Step::Bounty(id, c) => classify(self.commands.bounty(id, c, ctx).await),
            Step::Payment(id, c) => classify(self.commands.payment(id, c, ctx).await),
            Step::Wallet(id, c) => classify(self.commands.wallet(id, c, ctx).await),
        };
        outcome.map_err(ProjectionError::Transient)
    }
}

/// A command's outcome for a process manager: done, refused (with the reason), or a fault.
fn classify<E: std::error::Error>(
    result: Result<Committed, CommandError<E>>,
) -> Result<Result<(), String>, String> {
    match result {
        Ok(_) => Ok(Ok(())),
        Err(CommandError::Domain(e)) => Ok(Err(e.to_string())),
        // A follow-up expects no version (`CommandContext::follow_up`): never seen; were it,
        // a refusal like any other.
        Err(e @ CommandError::Moved { .. }) => Ok(Err(e.to_string())),
        Err(e @ CommandError::Conflict(_)) => Err(e.to_string()),
        Err(CommandError::Internal(e)) => Err(format!("{e:#}")),
    }
}

/// A note for a follow-up command, from our own short texts or a reason already validated
/// once; a refusal here is a bug in the event, reported like any undecodable event.
fn note(text: &str) -> Result<Note, ProjectionError> {
    Note::parse(text).map_err(|e| ProjectionError::Invalid(e.to_string()))
}

fn money(amount: i64, currency: Currency) -> Result<Money, ProjectionError> {
    Money::positive(amount, currency).map_err(|e| ProjectionError::Invalid(e.to_string()))
}

type Reaction = Option<(Progress, Vec<Step>)>;

/// What an event sets off. Pure: the same event always asks for the same steps.
fn react(event: &StoredEvent) -> Result<Reaction, ProjectionError> {
    let at = Utc::now();
    let decode_err = |e| ProjectionError::decode(event, e);
    let bounty_id = event.aggregate_uuid();
    Ok(match event.aggregate_type.as_str() {
        "Bounty" => {
            let bounty = bounty_id.ok_or_else(|| ProjectionError::Invalid("bounty id".into()))?;
            let flow = |payment_id: Uuid, step, done| Progress {
                flow: payment_id,
                kind: "bounty-reward",
                bounty: Some(bounty),
                step,
                done,
            };
            match event.decode::<BountyEvent>().map_err(decode_err)? {
                BountyEvent::BountyPosted {
                    poster,
                    payment_id,
                    reward,
                    ..
                } => Some((
                    flow(payment_id, "requesting hold", false),
                    vec![Step::Payment(
                        payment_id,
                        PaymentCommand::Request {
                            payment_id,
                            payer: poster,
                            money: reward,
                            bounty_id: bounty,
                            at,
                        },
                    )],
                )),
                BountyEvent::WorkApproved {
                    hunter, payment_id, ..
                }
                | BountyEvent::DisputeResolved {
                    outcome: DisputeOutcome::PayHunter,
                    hunter,
                    payment_id,
                    ..
                } => Some((
                    flow(payment_id, "releasing to hunter", false),
                    vec![Step::Payment(
                        payment_id,
                        PaymentCommand::Release { payee: hunter, at },
                    )],
                )),
                BountyEvent::BountyCancelled {
                    payment_id,
                    refund: true,
                    ..
                }
                | BountyEvent::BountyExpired { payment_id, .. }
                | BountyEvent::BountyFundedAfterCancel { payment_id, .. }
                | BountyEvent::DisputeResolved {
                    outcome: DisputeOutcome::RefundPoster,
                    payment_id,
                    ..
                } => Some((
                    flow(payment_id, "refunding poster", false),
                    vec![Step::Payment(
                        payment_id,
                        PaymentCommand::Refund {
                            reason: note(&event.event_type)?,
                            at,
                        },
                    )],
                )),
                BountyEvent::BountyOpened { payment_id, .. } => {
                    Some((flow(payment_id, "funded", false), Vec::new()))
                }
                BountyEvent::BountyUnfunded { payment_id, .. } => {
                    Some((flow(payment_id, "unfunded", true), Vec::new()))
                }
                BountyEvent::BountyPaid { payment_id, .. } => {
                    Some((flow(payment_id, "hunter paid", true), Vec::new()))
                }
                BountyEvent::BountyRefunded { payment_id, .. } => {
                    Some((flow(payment_id, "poster refunded", true), Vec::new()))
                }
                _ => None,
            }
        }
        "Payment" => {
            let payment_id =
                bounty_id.ok_or_else(|| ProjectionError::Invalid("payment id".into()))?;
            let flow = |bounty: Uuid, step| Progress {
                flow: payment_id,
                kind: "bounty-reward",
                bounty: Some(bounty),
                step,
                done: false,
            };
            match event.decode::<PaymentEvent>().map_err(decode_err)? {
                PaymentEvent::PaymentRequested {
                    payer,
                    bounty_id,
                    currency,
                    amount,
                    ..
                } => Some((
                    flow(bounty_id, "holding funds"),
                    vec![Step::Wallet(
                        payer,
                        WalletCommand::HoldFunds {
                            owner: payer,
                            payment_id,
                            money: money(amount, currency)?,
                            at,
                        },
                    )],
                )),
                PaymentEvent::PaymentHeld { bounty_id, .. } => Some((
                    flow(bounty_id, "opening bounty"),
                    vec![Step::Bounty(bounty_id, BountyCommand::MarkFunded { at })],
                )),
                PaymentEvent::PaymentHoldFailed {
                    bounty_id, reason, ..
                } => Some((
                    // Nothing was held, so nothing is owed: the flow ends here, also when a
                    // bounty cancelled meanwhile records no `BountyUnfunded` after it.
                    Progress {
                        done: true,
                        ..flow(bounty_id, "marking bounty unfunded")
                    },
                    vec![Step::Bounty(
                        bounty_id,
                        BountyCommand::MarkUnfunded {
                            reason: note(&reason)?,
                            at,
                        },
                    )],
                )),
                PaymentEvent::ReleaseRequested {
                    payer,
                    payee,
                    bounty_id,
                    currency,
                    amount,
                    ..
                } => Some((
                    flow(bounty_id, "paying hunter"),
                    vec![
                        Step::Wallet(
                            payee,
                            WalletCommand::ReceivePayment {
                                owner: payee,
                                payment_id,
                                money: money(amount, currency)?,
                                from: payer,
                                at,
                            },
                        ),
                        Step::Wallet(payer, WalletCommand::ReleaseHold { payment_id, at }),
                        Step::Payment(payment_id, PaymentCommand::MarkReleased { at }),
                    ],
                )),
                PaymentEvent::RefundRequested {
                    payer, bounty_id, ..
                } => Some((
                    flow(bounty_id, "refunding"),
                    vec![
                        Step::Wallet(payer, WalletCommand::RefundHold { payment_id, at }),
                        Step::Payment(payment_id, PaymentCommand::MarkRefunded { at }),
                    ],
                )),
                PaymentEvent::PaymentReleased { bounty_id, .. } => Some((
                    flow(bounty_id, "closing bounty as paid"),
                    vec![Step::Bounty(bounty_id, BountyCommand::MarkPaid { at })],
                )),
                PaymentEvent::PaymentRefunded { bounty_id, .. } => Some((
                    flow(bounty_id, "closing bounty as refunded"),
                    vec![Step::Bounty(bounty_id, BountyCommand::MarkRefunded { at })],
                )),
            }
        }
        "Wallet" => match event.decode::<WalletEvent>().map_err(decode_err)? {
            WalletEvent::FundsHeld { payment_id, .. } => Some((
                Progress {
                    flow: payment_id,
                    kind: "bounty-reward",
                    bounty: None,
                    step: "funds held",
                    done: false,
                },
                vec![Step::Payment(payment_id, PaymentCommand::MarkHeld { at })],
            )),
            WalletEvent::HoldRejected { payment_id, .. } => Some((
                Progress {
                    flow: payment_id,
                    kind: "bounty-reward",
                    bounty: None,
                    step: "hold rejected",
                    done: false,
                },
                vec![Step::Payment(
                    payment_id,
                    PaymentCommand::MarkHoldFailed {
                        reason: note("insufficient funds")?,
                        at,
                    },
                )],
            )),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bountyline_domain::bounty::BountyCommand;

    fn follow_up(position: i64, flow: u128, targets: &[u128]) -> FollowUp {
        FollowUp {
            flow: Uuid::from_u128(flow),
            position,
            ctx: CommandContext::system("test"),
            steps: targets
                .iter()
                .map(|t| {
                    Step::Bounty(
                        Uuid::from_u128(*t),
                        BountyCommand::MarkPaid { at: Utc::now() },
                    )
                })
                .collect(),
        }
    }

    fn positions(lanes: &[Vec<FollowUp>]) -> Vec<Vec<i64>> {
        lanes
            .iter()
            .map(|lane| lane.iter().map(|f| f.position).collect())
            .collect()
    }

    #[test]
    fn follow_ups_sharing_a_flow_or_a_target_share_a_lane_in_position_order() {
        let lanes = lanes(vec![
            follow_up(1, 1, &[100]),
            follow_up(2, 2, &[200]),
            follow_up(3, 3, &[300]),
            // Shares wallet 200 with position 2 and flow 1 with position 1: one lane of three.
            follow_up(4, 1, &[200]),
            follow_up(5, 3, &[]),
        ]);
        assert_eq!(positions(&lanes), vec![vec![1, 2, 4], vec![3, 5]]);
    }

    #[test]
    fn unrelated_follow_ups_get_lanes_of_their_own() {
        let lanes = lanes((1..=4).map(|i| follow_up(i, i as u128, &[])).collect());
        assert_eq!(lanes.len(), 4);
    }
}
