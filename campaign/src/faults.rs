//! The faults the campaign injects, each undone before the next: processes killed or frozen,
//! NATS or Postgres down, database backends killed, an append held open, and faults on the
//! wire between the processes and Postgres or NATS (`campaign/wire`): group commits cut after
//! Postgres committed them or before they were sent, a commit's answer stalled, the flushes
//! that acknowledge committed groups cut, latency, every connection cut while new ones are
//! refused.

use rand::rngs::StdRng;
use rand::Rng;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

use bountyline::store::{APPLICATION_NAME, FLUSHER_NAME};
use bountyline_wire::{Cut, Proxy, Rule};

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
    /// Group commits whose answer is dropped after Postgres committed them.
    WireCutAfterCommit,
    /// Group commits dropped before they reach Postgres.
    WireCutBeforeSending,
    /// A group commit whose answer never comes, the connection left open.
    WireStall,
    /// The flushes that acknowledge committed groups (docs/adr/0005), cut before they reach
    /// Postgres or after its answer: the groups are committed, their outcome unknown.
    WireCutFlush,
    /// Every chunk to and from Postgres delayed.
    WireLatency,
    /// Every connection to Postgres cut, new ones refused for a while.
    WireCutAll,
    /// Every connection to NATS cut, new ones refused for a while.
    NatsWireCut,
}

const ALL: [Fault; 14] = [
    Fault::KillApi,
    Fault::KillWorker,
    Fault::FreezeWorker,
    Fault::NatsDown,
    Fault::PostgresCrash,
    Fault::TerminateBackends,
    Fault::HoldAppend,
    Fault::WireCutAfterCommit,
    Fault::WireCutBeforeSending,
    Fault::WireStall,
    Fault::WireCutFlush,
    Fault::WireLatency,
    Fault::WireCutAll,
    Fault::NatsWireCut,
];

impl Fault {
    /// The i-th fault of a campaign: every kind comes up once in each round (of all the kinds),
    /// in an order the seed decides, so a short campaign still sees a spread.
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
    /// The campaign's own connection for faults and checks (reconnects by itself), straight
    /// to Postgres.
    pub pool: PgPool,
    /// Each process's wires, in the order of `processes`.
    pub wires: Vec<Wires>,
}

/// One process's wires to Postgres and to NATS: fault proxies of its own.
pub struct Wires {
    pub pg: Proxy,
    pub nats: Proxy,
}

impl Wires {
    pub async fn start(pg: &Postgres, nats: &Nats) -> anyhow::Result<Self> {
        Ok(Self {
            pg: Proxy::start(([127, 0, 0, 1], pg.port).into()).await?,
            nats: Proxy::opaque(([127, 0, 0, 1], nats.port).into()).await?,
        })
    }

    /// `env` with the database and NATS reached through these wires.
    pub fn env(&self, env: &[(String, String)]) -> Vec<(String, String)> {
        let through = [
            (
                "DATABASE_URL",
                format!("postgres://bountyline@{}/bountyline", self.pg.address()),
            ),
            ("NATS_URL", format!("nats://{}", self.nats.address())),
        ];
        let mut env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| through.iter().all(|(name, _)| k != name))
            .cloned()
            .collect();
        env.extend(through.map(|(k, v)| (k.to_owned(), v)));
        env
    }
}

impl Deployment {
    fn pick(&mut self, rng: &mut StdRng, role: Role) -> &mut Process {
        let i = self.pick_index(rng, role);
        &mut self.processes[i]
    }

    fn pick_index(&self, rng: &mut StdRng, role: Role) -> usize {
        let indices: Vec<usize> = (0..self.processes.len())
            .filter(|i| self.processes[*i].role == role)
            .collect();
        indices[rng.random_range(0..indices.len())]
    }

    /// A process's wires, and its name: an API's two times in three (the clients' commands
    /// go through them), else a worker's (the process managers').
    fn pick_wires(&self, rng: &mut StdRng) -> (&Wires, &str) {
        let role = if rng.random_bool(2.0 / 3.0) {
            Role::Api
        } else {
            Role::Worker
        };
        let i = self.pick_index(rng, role);
        (&self.wires[i], &self.processes[i].name)
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
            Fault::WireCutAfterCommit | Fault::WireCutBeforeSending | Fault::WireStall => {
                let (at, times) = match fault {
                    Fault::WireCutAfterCommit => (Cut::AfterAnswer, rng.random_range(1..=5)),
                    Fault::WireCutBeforeSending => (Cut::BeforeSending, rng.random_range(1..=5)),
                    _ => (Cut::Stall, 1),
                };
                let (wires, name) = self.pick_wires(rng);
                let fired = cut(&wires.pg, APPLICATION_NAME, "append_group", at, times).await;
                (format!("{fired} of {times} group commits of {name}"), None)
            }
            Fault::WireCutFlush => {
                let cut_at = match rng.random_bool(0.5) {
                    true => Cut::AfterAnswer,
                    false => Cut::BeforeSending,
                };
                let times = rng.random_range(1..=5);
                let (wires, name) = self.pick_wires(rng);
                let statement = "pg_logical_emit_message";
                let fired = cut(&wires.pg, FLUSHER_NAME, statement, cut_at, times).await;
                (
                    format!("{fired} of {times} flushes of {name} ({cut_at:?})"),
                    None,
                )
            }
            Fault::WireLatency => {
                let latency = Duration::from_millis(rng.random_range(20..200));
                let pause = Duration::from_millis(rng.random_range(1_000..4_000));
                let (wires, name) = self.pick_wires(rng);
                wires.pg.set_latency(latency);
                tokio::time::sleep(pause).await;
                wires.pg.set_latency(Duration::ZERO);
                (
                    format!("{name}'s postgres wire, {latency:?} each way"),
                    None,
                )
            }
            Fault::WireCutAll | Fault::NatsWireCut => {
                let pause = Duration::from_millis(rng.random_range(200..2_500));
                let (wires, name) = self.pick_wires(rng);
                let (wire, to) = match fault {
                    Fault::WireCutAll => (&wires.pg, "postgres"),
                    _ => (&wires.nats, "nats"),
                };
                wire.refuse(true);
                wire.cut_all();
                tokio::time::sleep(pause).await;
                wire.refuse(false);
                (format!("{name}'s {to} wire"), None)
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

/// Arms `cut` for the next `times` group commits of any API or worker and waits (bounded) for
/// them to happen; returns how many did.
async fn cut(wire: &Proxy, application: &str, statement: &str, cut: Cut, times: usize) -> usize {
    let before = wire.fired();
    wire.arm(Rule {
        application: Some(application.to_owned()),
        statement: statement.to_owned(),
        cut,
        times,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while wire.fired() < before + times && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wire.disarm();
    wire.fired() - before
}
