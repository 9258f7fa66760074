//! Defects the campaign can run with (`--defect NAME`), to see each of its checks fail on the
//! defect it guards against (DESIGN.md, "Every check can fail"). Two kinds:
//!
//! - in the server, switched on in every process (`BOUNTYLINE_DEFECTS`, a build with the
//!   `defects` feature, which `scripts/campaign` makes when `--defect` is given): see
//!   `bountyline::defects`;
//! - in the store, written by the campaign itself after the operations, as a rogue writer (or
//!   a bug that got past every guard) would leave it: a second command under a client's key,
//!   an escrow hold resolved (released or refunded) twice.

use sqlx::PgPool;

use crate::world::{Outcome, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Switched on in the server processes by this name.
    Server(&'static str),
    /// A copy of an acknowledged withdrawal appended under the same actor and key.
    ReplayedKey,
    /// A copy of an escrow hold's release (or refund) appended to the payer's wallet.
    HoldResolvedTwice,
}

impl Defect {
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        use bountyline::defects::Defect as InServer;
        let server = [
            InServer::ForgetUnknownOutcomes,
            InServer::AnswerAnotherPosition,
        ];
        if let Some(defect) = server.iter().find(|d| d.name() == name) {
            return Ok(Defect::Server(defect.name()));
        }
        match name {
            "replayed-key" => Ok(Defect::ReplayedKey),
            "hold-resolved-twice" => Ok(Defect::HoldResolvedTwice),
            _ => anyhow::bail!(
                "no defect {name}: forget-unknown-outcomes, answer-another-position, \
                 replayed-key, hold-resolved-twice"
            ),
        }
    }

    /// Writes a store defect into the store; says what it wrote (nothing for a server defect).
    pub async fn write(self, pool: &PgPool, journal: &[Record]) -> anyhow::Result<String> {
        let copied = match self {
            Defect::Server(_) => return Ok(String::new()),
            Defect::ReplayedKey => {
                let Some(answer) = journal.iter().find_map(|r| match &r.outcome {
                    Outcome::Ok(_, answer) if r.request.kind == "withdraw" => Some(answer),
                    _ => None,
                }) else {
                    anyhow::bail!("no acknowledged withdrawal to replay");
                };
                let position = answer["position"].as_i64().unwrap_or_default();
                append_copy(
                    pool,
                    "position = $1",
                    position,
                    "jsonb_set(e.payload, '{WithdrawalRequested,withdrawal_id}', \
                     to_jsonb(gen_random_uuid()::text))",
                )
                .await?
            }
            Defect::HoldResolvedTwice => {
                append_copy(
                    pool,
                    "event_type IN ('HoldReleased', 'HoldRefunded') AND position > $1",
                    0,
                    "e.payload",
                )
                .await?
            }
        };
        Ok(format!(
            "{self:?}: appended a copy of the event at position {copied}"
        ))
    }
}

/// Appends, as the next event of its stream, a copy of the first event matching `filter`
/// (with `$1` bound to `bind`), its payload as `payload` makes it and a new command id; returns
/// the copied event's position.
async fn append_copy(pool: &PgPool, filter: &str, bind: i64, payload: &str) -> anyhow::Result<i64> {
    let copied: Option<i64> = sqlx::query_scalar(&format!(
        "WITH e AS (SELECT * FROM events WHERE {filter} ORDER BY position LIMIT 1) \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         SELECT e.aggregate_type, e.aggregate_id, \
                (SELECT max(sequence) + 1 FROM events x \
                  WHERE x.aggregate_type = e.aggregate_type AND x.aggregate_id = e.aggregate_id), \
                e.event_type, e.event_version, {payload}, \
                jsonb_set(e.metadata, '{{command_id}}', to_jsonb(gen_random_uuid()::text)) \
           FROM e RETURNING (SELECT position FROM e)"
    ))
    .bind(bind)
    .fetch_optional(pool)
    .await?;
    copied.ok_or_else(|| anyhow::anyhow!("no event to copy"))
}
