//! Why a payment command was refused.

use uuid::Uuid;

use super::PaymentStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment already exists with other details")]
    AlreadyExists,
    #[error("no such payment")]
    NotFound,
    #[error("the payment is {0}: its funds are not held, so it cannot be resolved")]
    NotHeld(PaymentStatus),
    #[error("the payment is already {0}; a payment resolves exactly once")]
    AlreadyResolving(PaymentStatus),
    #[error("the payment is already being released to another payee")]
    PayeeMismatch { payee: Uuid },
    #[error("the payment is {0}, so this step does not apply")]
    WrongStatus(PaymentStatus),
}
