//! A payment: the two-phase escrow record of one bounty's reward, from a payer to a payee
//! decided later.
//!
//! Lifecycle: requested → held | hold_failed; held → releasing → released, or
//! held → refunding → refunded. The payment is where "each hold resolves exactly once" is
//! decided: the first of `Release` and `Refund` wins and the other is refused, even when
//! approve and cancel race, and a repeated step changes nothing. Moving the money itself is
//! the wallets' work, driven by a process manager from these events.

mod command;
mod error;
mod event;

pub use command::PaymentCommand;
pub use error::PaymentError;
pub use event::PaymentEvent;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::money::{Currency, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Requested,
    Held,
    HoldFailed,
    Releasing,
    Released,
    Refunding,
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        PaymentStatus::Requested,
        PaymentStatus::Held,
        PaymentStatus::HoldFailed,
        PaymentStatus::Releasing,
        PaymentStatus::Released,
        PaymentStatus::Refunding,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Requested => "requested",
            PaymentStatus::Held => "held",
            PaymentStatus::HoldFailed => "hold_failed",
            PaymentStatus::Releasing => "releasing",
            PaymentStatus::Released => "released",
            PaymentStatus::Refunding => "refunding",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The payment aggregate's state, folded from its events. `None` until it is requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub state: Option<PaymentState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentState {
    pub payer: Uuid,
    pub payee: Option<Uuid>,
    pub bounty_id: Uuid,
    pub currency: Currency,
    pub amount: i64,
    pub status: PaymentStatus,
}

impl Payment {
    /// Decides which events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let state = match (&self.state, command) {
            (
                None,
                PaymentCommand::Request {
                    payer,
                    money,
                    bounty_id,
                    at,
                    ..
                },
            ) => {
                return Ok(vec![PaymentEvent::PaymentRequested {
                    payer,
                    bounty_id,
                    currency: money.currency(),
                    amount: money.amount(),
                    at,
                }])
            }
            (None, _) => return Err(PaymentError::NotFound),
            (Some(state), command) => (state, command),
        };
        match state {
            (
                state,
                PaymentCommand::Request {
                    payer,
                    money,
                    bounty_id,
                    ..
                },
            ) => {
                if state.is_request(payer, money, bounty_id) {
                    Ok(vec![])
                } else {
                    Err(PaymentError::AlreadyExists)
                }
            }
            (state, PaymentCommand::MarkHeld { at }) => match state.status {
                PaymentStatus::Requested => Ok(vec![PaymentEvent::PaymentHeld {
                    payer: state.payer,
                    bounty_id: state.bounty_id,
                    currency: state.currency,
                    amount: state.amount,
                    at,
                }]),
                PaymentStatus::HoldFailed => Err(PaymentError::WrongStatus(state.status)),
                // Held, and possibly resolved since: a late duplicate.
                _ => Ok(vec![]),
            },
            (state, PaymentCommand::MarkHoldFailed { reason, at }) => match state.status {
                PaymentStatus::Requested => Ok(vec![PaymentEvent::PaymentHoldFailed {
                    payer: state.payer,
                    bounty_id: state.bounty_id,
                    currency: state.currency,
                    amount: state.amount,
                    reason: reason.as_str().to_owned(),
                    at,
                }]),
                PaymentStatus::HoldFailed => Ok(vec![]),
                status => Err(PaymentError::WrongStatus(status)),
            },
            (state, PaymentCommand::Release { payee, at }) => match state.status {
                PaymentStatus::Held => Ok(vec![PaymentEvent::ReleaseRequested {
                    payer: state.payer,
                    payee,
                    bounty_id: state.bounty_id,
                    currency: state.currency,
                    amount: state.amount,
                    at,
                }]),
                PaymentStatus::Releasing | PaymentStatus::Released => match state.payee {
                    Some(current) if current != payee => {
                        Err(PaymentError::PayeeMismatch { payee: current })
                    }
                    _ => Ok(vec![]),
                },
                PaymentStatus::Refunding | PaymentStatus::Refunded => {
                    Err(PaymentError::AlreadyResolving(state.status))
                }
                PaymentStatus::Requested | PaymentStatus::HoldFailed => {
                    Err(PaymentError::NotHeld(state.status))
                }
            },
            (state, PaymentCommand::Refund { reason, at }) => match state.status {
                PaymentStatus::Held => Ok(vec![PaymentEvent::RefundRequested {
                    payer: state.payer,
                    bounty_id: state.bounty_id,
                    currency: state.currency,
                    amount: state.amount,
                    reason: reason.as_str().to_owned(),
                    at,
                }]),
                PaymentStatus::Refunding | PaymentStatus::Refunded => Ok(vec![]),
                PaymentStatus::Releasing | PaymentStatus::Released => {
                    Err(PaymentError::AlreadyResolving(state.status))
                }
                PaymentStatus::Requested | PaymentStatus::HoldFailed => {
                    Err(PaymentError::NotHeld(state.status))
                }
            },
            (state, PaymentCommand::MarkReleased { at }) => match (state.status, state.payee) {
                (PaymentStatus::Releasing, Some(payee)) => {
                    Ok(vec![PaymentEvent::PaymentReleased {
                        payer: state.payer,
                        payee,
                        bounty_id: state.bounty_id,
                        currency: state.currency,
                        amount: state.amount,
                        at,
                    }])
                }
                (PaymentStatus::Released, _) => Ok(vec![]),
                (status, _) => Err(PaymentError::WrongStatus(status)),
            },
            (state, PaymentCommand::MarkRefunded { at }) => match state.status {
                PaymentStatus::Refunding => Ok(vec![PaymentEvent::PaymentRefunded {
                    payer: state.payer,
                    bounty_id: state.bounty_id,
                    currency: state.currency,
                    amount: state.amount,
                    at,
                }]),
                PaymentStatus::Refunded => Ok(vec![]),
                status => Err(PaymentError::WrongStatus(status)),
            },
        }
    }
}

impl PaymentState {
    /// Whether a repeated `Request` asks for exactly this payment.
    fn is_request(&self, payer: Uuid, money: Money, bounty_id: Uuid) -> bool {
        self.payer == payer
            && self.bounty_id == bounty_id
            && self.currency == money.currency()
            && self.amount == money.amount()
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PaymentCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), PaymentError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: PaymentEvent) {
        let status = event.status_after();
        match event {
            PaymentEvent::PaymentRequested {
                payer,
                bounty_id,
                currency,
                amount,
                ..
            } => {
                self.state = Some(PaymentState {
                    payer,
                    payee: None,
                    bounty_id,
                    currency,
                    amount,
                    status,
                });
            }
            event => {
                let Some(state) = self.state.as_mut() else {
                    return;
                };
                if let PaymentEvent::ReleaseRequested { payee, .. } = event {
                    state.payee = Some(payee);
                }
                state.status = status;
            }
        }
    }
}

#[cfg(test)]
mod tests;
