//! Why a bounty command was refused: who may not act (`Not*`), or what the bounty's state
//! does not allow.

use super::{ApplicationStatus, BountyStatus};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BountyError {
    #[error("the bounty already exists")]
    AlreadyExists,
    #[error("no such bounty")]
    NotFound,
    #[error("the deadline must be in the future")]
    DeadlineInPast,
    #[error("only the bounty's poster may do this")]
    NotPoster,
    #[error("only the hunter assigned to the bounty may do this")]
    NotHunter,
    #[error("only the applicant may withdraw an application")]
    NotApplicant,
    #[error("only the bounty's poster or its assigned hunter may do this")]
    NotParty,
    #[error("only an admin may do this")]
    NotAllowed,
    #[error("the poster cannot apply for their own bounty")]
    CannotApplyToOwnBounty,
    #[error("you have already applied for this bounty")]
    AlreadyApplied,
    #[error("the application id is already taken")]
    ApplicationIdTaken,
    #[error("no such application for this bounty")]
    UnknownApplication,
    #[error("the application is {0}, not pending")]
    ApplicationNotPending(ApplicationStatus),
    #[error("the bounty is {0}, not open")]
    NotOpen(BountyStatus),
    #[error("the bounty's deadline has passed")]
    DeadlinePassed,
    #[error("the bounty is {0}, so this is not possible now")]
    WrongStatus(BountyStatus),
    #[error("the bounty is {0} and can no longer be cancelled by you")]
    CannotCancel(BountyStatus),
    #[error("the bounty is not open past its deadline with nobody assigned")]
    NotExpirable,
    #[error("no refund is due for this bounty")]
    NoRefundDue,
}
