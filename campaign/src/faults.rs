//! The faults the campaign injects, each undone before the next: processes killed or frozen,
//! NATS or Postgres down, database backends killed, an append held open.

use rand::rngs::StdRng;
use rand::Rng;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::cluster::{Nats, Postgres, Process, Role, READY_WITHIN};

/// The timings the faults must outlast (the campaign configures the processes with them).
pub const ACK_WAIT: Duration = Duration::from_secs(3);
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillApi,
    KillWorker,
    FreezeWorker,
    NatsDown,
    PostgresCrash,
    TerminateBackends,
    HoldAppend,
}

const ALL: [Fault; 7] = [
    Fault::KillApi,
    Fault::KillWorker,
    Fault::FreezeWorker,
    Fault::NatsDown,
    Fault::PostgresCrash,
    Fault::TerminateBackends,
    Fault::HoldAppend,
];

impl Fault {
    /// The i-th fault of a campaign: every kind comes up once in each round of seven, in an
    /// order the seed decides, so a short campaign still sees a spread.
    pub fn pick(rng: &mut StdRng, i: usize, order: &mut Vec<Fault>) -> Fault {
        if i.is_multiple_of(ALL.len()) {
            order.clear();
            order.extend(ALL);
            for k in (1..order.len()).rev() {
                order.swap(k, rng.random_range(0..=k));
            }
        }
        order[i % ALL.len()]
    }
}

/// What a fault did, for the report.
#[derive(Debug)]
pub struct Injected {
    pub fault: Fault,
    pub target: String,
    /// How long the restarted process (or service) took to be ready again.
    pub recovery: Option<Duration>,
}

pub struct Deployment {
    pub pg: Postgres,
    pub nats: Nats,
    pub processes: Vec<Process>,
    /// The campaign's own connection for faults and checks (reconnects by itself).
    pub pool: PgPool,
}

impl Deployment {
    fn pick(&mut self, rng: &mut StdRng, role: Role) -> &mut Process {
        let indices: Vec<usize> = (0..self.processes.len())
            .filter(|i| self.processes[*i].role == role)
            .collect();
        let i = indices[rng.random_range(0..indices.len())];
        &mut self.processes[i]
    }

    pub async fn inject(&mut self, fault: Fault, rng: &mut StdRng) -> anyhow::Result<Injected> {
        let (target, recovery) = match fault {
            Fault::KillApi | Fault::KillWorker => {
                let role = if fault == Fault::KillApi {
                    Role::Api
                } else {
                    Role::Worker
                };
                let process = self.pick(rng, role);
                process.kill()?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_000))).await;
                (process.name.clone(), Some(process.start().await?))
            }
            Fault::FreezeWorker => {
                let process = self.pick(rng, Role::Worker);
                process.pause()?;
                tokio::time::sleep(ACK_WAIT + Duration::from_secs(2)).await;
                process.resume()?;
                (process.name.clone(), None)
            }
            Fault::NatsDown => {
                self.nats.stop()?;
                tokio::time::sleep(DUPLICATE_WINDOW + Duration::from_secs(2)).await;
                let started = Instant::now();
                self.nats.start()?;
                ("nats".into(), Some(started.elapsed()))
            }
            Fault::PostgresCrash => {
                self.pg.stop("immediate")?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                let started = Instant::now();
                self.pg.start()?;
                ("postgres".into(), Some(started.elapsed()))
            }
            Fault::TerminateBackends => {
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND backend_type = 'client backend' AND random() < 0.5",
                )
                .fetch_all(&self.pool)
                .await?;
                (format!("{} backends", killed.len()), None)
            }
            Fault::HoldAppend => {
                let commit = rng.random_bool(0.5);
                hold_append(
                    &self.pool,
                    commit,
                    Duration::from_millis(rng.random_range(500..3_000)),
                )
                .await?;
                (
                    format!(
                        "append held, then {}",
                        if commit { "committed" } else { "rolled back" }
                    ),
                    None,
                )
            }
        };
        if recovery.is_some_and(|r| r > READY_WITHIN) {
            eprintln!("campaign: {target} took {recovery:?} to be ready");
        }
        Ok(Injected {
            fault,
            target,
            recovery,
        })
    }
}

/// An append of a probe event kept open while others commit behind it (the store orders
/// positions by commit, so they must wait, and nobody may see past it).
async fn hold_append(pool: &PgPool, commit: bool, hold: Duration) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Probe', $1, 1, 'ProbeHeld', '1', '{}'::jsonb, '{}'::jsonb)",
    )
    .bind(Uuid::new_v4().to_string())
    .execute(&mut *tx)
    .await?;
    tokio::time::sleep(hold).await;
    if commit {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(())
}
