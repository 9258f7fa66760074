//! Defects a build for proving checks can switch on (`cargo build --features defects`, then
//! `BOUNTYLINE_DEFECTS=<name>,...` in the process's environment). A check of a guarantee
//! counts once it has been seen to fail on the defect it guards against (DESIGN.md, "Every
//! check can fail"); the fault campaign's `--defect` runs a deployment with one of these on.
//!
//! Without the feature none of this is in the binary: [`on`] is `false` at compile time and
//! every branch on it is removed, so a production build cannot be switched into a defect.

/// A defect, by the guarantee it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Exactly once as it was before issue 22: a group commit whose answer was lost is "not
    /// applied", the retry runs the command afresh, ids are minted per request and the store
    /// records no keys (so nothing refuses a second command under one key).
    ForgetUnknownOutcomes,
    /// A command is answered with the position before its last event's.
    AnswerAnotherPosition,
    /// A group commit is answered as soon as it is committed, before the WAL is flushed past
    /// it (its commit is asynchronous, docs/adr/0005): a crash of Postgres loses what was
    /// acknowledged.
    AnswerBeforeFlush,
}

impl Defect {
    /// The name `BOUNTYLINE_DEFECTS` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Defect::ForgetUnknownOutcomes => "forget-unknown-outcomes",
            Defect::AnswerAnotherPosition => "answer-another-position",
            Defect::AnswerBeforeFlush => "answer-before-flush",
        }
    }
}

/// Whether `defect` is switched on in this process.
#[cfg(feature = "defects")]
pub fn on(defect: Defect) -> bool {
    static SWITCHED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let switched = SWITCHED.get_or_init(|| {
        let names = std::env::var("BOUNTYLINE_DEFECTS").unwrap_or_default();
        if !names.is_empty() {
            tracing::warn!(defects = %names, "defects switched on: this process is broken on purpose");
        }
        names
    });
    switched.split(',').any(|name| name.trim() == defect.name())
}

/// Whether `defect` is switched on in this process: never, in a build without `defects`.
#[cfg(not(feature = "defects"))]
#[inline(always)]
pub const fn on(_defect: Defect) -> bool {
    false
}
