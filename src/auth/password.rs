//! Password hashing (argon2id, PHC strings) and the rules a new password must meet.
//!
//! Hashing is deliberately slow, so it never runs on an async worker thread: every entry point
//! here is an async fn that moves the work onto tokio's blocking pool.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::http::error::{ApiError, ApiResult};

/// Memory cost in KiB: OWASP's minimum for argon2id (19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Iterations: OWASP's minimum paired with 19 MiB.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// Shortest password accepted, in characters (not bytes, so that non-ASCII passwords are fair).
pub const MIN_CHARS: usize = 8;
/// Longest password accepted, in characters. NIST asks that at least 64 be allowed; the cap
/// keeps a request from buying much hashing work with a huge password.
pub const MAX_CHARS: usize = 128;

/// A hash of a random password nobody knows, with the same parameters as real hashes. Logins for
/// unknown emails verify against it so that they cost as much as a wrong password does, and the
/// response time does not reveal which emails have accounts.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$BgFCQBWDEfGYxoFwohbRig$\
                          6w42feD9KhKITFjhluieU05BBmiEZZUJp2Dnsagu+HQ";

/// What an erased person's `password_hash` is set to (ADR 7): not a PHC string, so no password
/// matches it; [`verify`] treats it as no account at all, after the same work.
pub const ERASED_HASH: &str = "!erased";

fn hasher() -> ApiResult<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// What is wrong with a new password, if anything, as a message for the `password` field.
/// Never echoes the password.
pub fn problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        Some(format!("must be at least {MIN_CHARS} characters long"))
    } else if chars > MAX_CHARS {
        Some(format!("must be at most {MAX_CHARS} characters long"))
    } else if password.chars().all(char::is_whitespace) {
        Some("must not be only whitespace".to_owned())
    } else {
        None
    }
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a
/// fresh random salt. Does not apply the rules: check [`problem`] first.
pub async fn hash(password: SecretString) -> ApiResult<String> {
    blocking(move || {
        let hash = hasher()?
            .hash_password(password.expose_secret().as_bytes())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 hashing: {e}")))?;
        Ok(hash.to_string())
    })
    .await
}

/// Verifies a password against a stored PHC string, or, when there is none (unknown email),
/// against [`DUMMY_HASH`] so that both failures cost the same. Only `Some` hash can yield `true`.
pub async fn verify(password: SecretString, stored: Option<String>) -> ApiResult<bool> {
    blocking(move || {
        let stored = stored.filter(|s| s != ERASED_HASH);
        let known = stored.is_some();
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(phc)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored password hash: {e}")))?;
        // The parameters come from the PHC string, so hashes made with older settings still
        // verify after the constants change.
        let matches = hasher()?
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
}

/// How many hashes run at once in this process: `auth.hashing_concurrency`, set at start.
static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// Sets how many password hashes may run at once (at least one). The first call wins: the
/// process's setting, before any sign-in; later calls (another app in the same test process)
/// change nothing.
pub fn limit_hashing(at_once: usize) {
    let _ = HASHING.set(tokio::sync::Semaphore::new(at_once.max(1)));
}

/// Runs argon2 off the async threads, `auth.hashing_concurrency` hashes at a time (one unless
/// configured): each takes 19 MiB and a core for tens of milliseconds, so a burst of logins
/// queues here instead of holding a hundred buffers at once, and the process's peak memory is
/// its base plus 19 MiB per hash allowed (docs/PERFORMANCE.md, "Memory after sign-ups").
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let permits = HASHING.get_or_init(|| tokio::sync::Semaphore::new(1));
    let _permit = permits.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_refuses_others() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(verify("correct horse battery".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!verify("correct horse battery!".into(), Some(phc))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_owasp_parameters_and_a_fresh_salt() {
        let a = hash("same password".into()).await.unwrap();
        let b = hash("same password".into()).await.unwrap();
        assert_ne!(a, b, "salts must differ");
        let parsed = PasswordHash::new(&a).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(0x13));
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[tokio::test]
    async fn the_dummy_hash_is_well_formed_uses_the_same_parameters_and_never_matches() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn password_rules_bound_length_in_characters_and_refuse_blank_passwords() {
        assert!(problem("1234567").is_some());
        assert!(problem("12345678").is_none());
        assert!(problem("ééééééé").is_some(), "7 characters, 14 bytes");
        assert!(problem(&"x".repeat(64)).is_none());
        assert!(problem(&"x".repeat(128)).is_none());
        assert!(problem(&"x".repeat(129)).is_some());
        assert!(problem("          ").is_some());
        assert!(problem("  pass  word  ").is_none());
    }
}
