//! Authentication and accounts: password hashing, access tokens (JWT), rotating refresh tokens,
//! users and roles, and the `Authenticated` extractor that handlers use to learn who is calling
//! (by a bearer token, or by a browser session's cookie with its CSRF defence).
//!
//! The HTTP surface lives in `http::routes::{auth, me}`; the CLI's "create an admin" is
//! [`users::create_admin`]. Credentials stay here: they never enter events, logs or exports.

pub mod cookies;
pub mod csrf;
pub mod extractor;
pub mod password;
pub mod refresh;
pub mod sessions;
pub mod tokens;
pub mod users;

pub use extractor::{require_oversight, require_role, Authenticated};
pub use tokens::AuthKeys;
pub use users::{AdminOutcome, User};
