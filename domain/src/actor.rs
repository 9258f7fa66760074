//! Who is acting: the authenticated user behind a command, and what they may do.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A role a user holds. Every user is a member; admins and auditors are granted explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Member, Role::Admin, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The user on whose behalf a command runs; system actors (schedulers, sagas) use
/// [`Actor::system`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
}

impl Actor {
    /// The well-known id under which bountyline's own schedulers and process managers act.
    pub const SYSTEM_ID: Uuid = Uuid::nil();

    pub fn new(user_id: Uuid, roles: Vec<Role>) -> Self {
        Self { user_id, roles }
    }

    pub fn system() -> Self {
        Self {
            user_id: Self::SYSTEM_ID,
            roles: vec![Role::Admin],
        }
    }

    pub fn has(&self, role: Role) -> bool {
        role == Role::Member || self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Admins and auditors see everything (read-only for auditors); members see their own.
    pub fn oversees(&self) -> bool {
        self.has(Role::Admin) || self.has(Role::Auditor)
    }
}
