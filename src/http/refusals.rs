//! How each aggregate's refusals read over HTTP: who may not act is 403, what does not exist
//! is 404, what the current state does not allow is 409, what can never be valid is 422, and
//! an aggregate not at the version `If-Match` named is 412 (after 403 and 404: RFC 9110 has
//! preconditions evaluated once the request is known to be allowed).

use bountyline_domain::bounty::BountyError;
use bountyline_domain::inbox::InboxError;
use bountyline_domain::payment::PaymentError;
use bountyline_domain::person::PersonError;
use bountyline_domain::task::TaskError;
use bountyline_domain::wallet::WalletError;

use super::error::ApiError;
use crate::commands::CommandError;

impl From<CommandError<TaskError>> for ApiError {
    fn from(e: CommandError<TaskError>) -> Self {
        common(e, |e| match e {
            TaskError::NotFound => ApiError::NotFound("no such task".into()),
            TaskError::NotHolder | TaskError::NotCreator => ApiError::Forbidden(e.to_string()),
            TaskError::AlreadyExists
            | TaskError::NotQueued(_)
            | TaskError::NotClaimed(_)
            | TaskError::LeaseMismatch
            | TaskError::LeaseNotExpired
            | TaskError::AlreadyFinished(_) => ApiError::conflict(e.to_string()),
        })
    }
}

impl From<CommandError<WalletError>> for ApiError {
    fn from(e: CommandError<WalletError>) -> Self {
        common(e, |e| match &e {
            WalletError::NotAllowed | WalletError::NotOwner | WalletError::WrongWallet { .. } => {
                ApiError::Forbidden(e.to_string())
            }
            WalletError::UnknownWithdrawal { .. } | WalletError::UnknownHold { .. } => {
                ApiError::NotFound(e.to_string())
            }
            WalletError::InsufficientFunds { .. } => ApiError::Conflict {
                kind: "insufficient-funds",
                detail: e.to_string(),
            },
            WalletError::ReferenceReused { .. }
            | WalletError::WithdrawalIdReused { .. }
            | WalletError::CreditIdReused { .. }
            | WalletError::PaymentIdReused { .. } => {
                ApiError::invalid_field("reference", e.to_string())
            }
            _ => ApiError::conflict(e.to_string()),
        })
    }
}

impl From<CommandError<PaymentError>> for ApiError {
    fn from(e: CommandError<PaymentError>) -> Self {
        common(e, |e| match &e {
            PaymentError::NotFound => ApiError::NotFound("no such payment".into()),
            _ => ApiError::conflict(e.to_string()),
        })
    }
}

impl From<CommandError<BountyError>> for ApiError {
    /// The poster applying to their own bounty is a question of who acts, so it is a 403 like
    /// the other `Not*` refusals, not a 422.
    fn from(e: CommandError<BountyError>) -> Self {
        common(e, |e| match &e {
            BountyError::NotFound => ApiError::NotFound("no such bounty".into()),
            BountyError::UnknownApplication => ApiError::NotFound(e.to_string()),
            BountyError::NotPoster
            | BountyError::NotHunter
            | BountyError::NotApplicant
            | BountyError::NotParty
            | BountyError::NotAllowed
            | BountyError::CannotApplyToOwnBounty => ApiError::Forbidden(e.to_string()),
            BountyError::DeadlineInPast => ApiError::invalid_field("deadline", e.to_string()),
            BountyError::AlreadyExists
            | BountyError::AlreadyApplied
            | BountyError::ApplicationIdTaken
            | BountyError::ApplicationNotPending(_)
            | BountyError::NotOpen(_)
            | BountyError::DeadlinePassed
            | BountyError::WrongStatus(_)
            | BountyError::CannotCancel(_)
            | BountyError::NotExpirable
            | BountyError::NoRefundDue => ApiError::conflict(e.to_string()),
        })
    }
}

impl From<CommandError<InboxError>> for ApiError {
    fn from(e: CommandError<InboxError>) -> Self {
        common(e, |e| match &e {
            InboxError::NotOwner | InboxError::WrongInbox { .. } => {
                ApiError::Forbidden(e.to_string())
            }
            InboxError::NoNotifications | InboxError::TooManyNotifications { .. } => {
                ApiError::invalid_field("ids", e.to_string())
            }
        })
    }
}

impl From<CommandError<PersonError>> for ApiError {
    fn from(e: CommandError<PersonError>) -> Self {
        common(e, |e| match &e {
            PersonError::NotAllowed | PersonError::WrongPerson { .. } => {
                ApiError::Forbidden(e.to_string())
            }
        })
    }
}

/// The failures every aggregate shares; `domain` maps the aggregate's own refusals.
fn common<E: std::error::Error>(
    e: CommandError<E>,
    domain: impl FnOnce(E) -> ApiError,
) -> ApiError {
    match e {
        CommandError::Domain(e) => domain(e),
        CommandError::Conflict(_) => ApiError::Conflict {
            kind: "concurrency-conflict",
            detail: e.to_string(),
        },
        CommandError::Moved {
            aggregate,
            current,
            refusal,
        } => match refusal.map(domain) {
            // Who may not act, or may not know the aggregate, hears so whatever If-Match
            // said: a version is told only to a caller the command was open to.
            Some(hidden @ (ApiError::Forbidden(_) | ApiError::NotFound(_))) => hidden,
            _ => ApiError::PreconditionFailed {
                aggregate,
                current_version: current,
            },
        },
        CommandError::Internal(e) => ApiError::internal(e),
    }
}
