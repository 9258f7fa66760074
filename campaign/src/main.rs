//! `campaign`: a seeded fault campaign against a whole bountyline deployment.
//!
//! It starts a private Postgres, a private NATS and several API and worker processes, drives
//! random operations through the HTTP API from concurrent clients while injecting faults,
//! then, once everything has settled, checks that nothing was lost, doubled or miscounted.
//! It prints PASS, or every violation found with the seed that reproduces the run. Normally
//! run through `scripts/campaign`, which builds the binaries and finds nats-server.

mod checks;
mod cluster;
mod defects;
mod faults;
mod world;

use anyhow::Context;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Nats, Postgres, Process, Role, READY_WITHIN};
use faults::{Deployment, Fault, Injected, Wires, ACK_WAIT, DUPLICATE_WINDOW};
use world::{Outcome, World};

/// After the last fault, lag must be back to zero within this.
const SETTLED_WITHIN: Duration = Duration::from_secs(30);
/// How long the campaign waits for the pipeline before giving up on a check: far past the
/// promise above, so that a slow pipeline is reported as slow rather than as lost events.
const PATIENCE: Duration = Duration::from_secs(300);
/// How long a client retries one request whose outcome is unknown.
const RETRY_FOR: Duration = Duration::from_secs(90);
const PREFIX: &str = "campaign";

#[derive(Parser, Debug)]
#[command(about = "Run a seeded fault campaign against a private bountyline deployment")]
struct Args {
    /// Decides the operations, the faults and their timing: the same seed replays the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Operations in all, shared by the clients.
    #[arg(long, default_value_t = 2_000)]
    ops: usize,
    /// Concurrent clients, each a user of its own.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Faults injected, spread evenly over the operations.
    #[arg(long, default_value_t = 7)]
    faults: usize,
    #[arg(long, default_value_t = 2)]
    apis: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The bountyline binary to run.
    #[arg(long)]
    bin: PathBuf,
    /// Where the deployment's data and logs go (default: a fresh directory per run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the directory even when the campaign passes.
    #[arg(long)]
    keep: bool,
    /// Run with a defect on purpose, to see the checks catch it: `forget-unknown-outcomes`
    /// or `answer-another-position` (in the server; needs a build with the `defects` feature,
    /// which scripts/campaign makes), `replayed-key` or `hold-resolved-twice` (written into the
    /// store after the operations).
    #[arg(long)]
    defect: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| default_dir(args.seed));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    say(&format!(
        "seed {} · data and logs in {}",
        args.seed,
        dir.display()
    ));
    let started = Instant::now();
    let violations = run(&args, &dir).await?;
    say(&format!("finished in {:.0?}", started.elapsed()));
    if violations.is_empty() {
        say(&format!("PASS (seed {})", args.seed));
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    } else {
        for v in &violations {
            say(&format!("VIOLATION: {v}"));
        }
        say(&format!(
            "FAIL (seed {}; replay with --seed {}; logs kept in {})",
            args.seed,
            args.seed,
            dir.display()
        ));
        std::process::exit(1);
    }
}

fn say(line: &str) {
    eprintln!("campaign: {line}");
}

/// Postgres (run as its own user when we are root) must be able to reach the directory.
fn default_dir(seed: u64) -> PathBuf {
    let base = if cluster::is_root() {
        PathBuf::from("/var/lib/bountyline-campaign")
    } else {
        PathBuf::from("target/campaign")
    };
    base.join(format!("seed-{seed}-{}", std::process::id()))
}

fn secret(rng: &mut StdRng) -> String {
    (0..48)
        .map(|_| char::from(rng.random_range(b'a'..=b'z')))
        .collect()
}

async fn run(args: &Args, dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let defect = args
        .defect
        .as_deref()
        .map(defects::Defect::parse)
        .transpose()?;
    let pg = Postgres::create(&dir.join("pg"))?;
    pg.start()?;
    let admin = PgPool::connect(&pg.url("postgres")).await?;
    sqlx::query("CREATE DATABASE bountyline")
        .execute(&admin)
        .await?;
    admin.close().await;
    let mut nats = Nats::create(dir)?;
    nats.start()?;

    let webhook_secret = secret(&mut rng);
    // The key that wraps people's data keys, from an rng of its own so that the seed's other
    // draws stay as they were.
    let privacy_key: [u8; 32] = StdRng::seed_from_u64(args.seed ^ 0x7072_6976_6163_7921).random();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", pg.url("bountyline")),
        ("NATS_URL", nats.url()),
        ("BOUNTYLINE_NATS_PREFIX", PREFIX.into()),
        (
            "BOUNTYLINE_NATS_DUPLICATE_WINDOW_SECS",
            DUPLICATE_WINDOW.as_secs().to_string(),
        ),
        (
            "BOUNTYLINE_WORKER__ACK_WAIT_SECS",
            ACK_WAIT.as_secs().to_string(),
        ),
        ("BOUNTYLINE_AUTH__JWT_SECRET", secret(&mut rng)),
        (
            "BOUNTYLINE_PRIVACY__KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, privacy_key),
        ),
        ("BOUNTYLINE_AUTH__ACCESS_TTL_SECS", "86400".into()),
        (
            "BOUNTYLINE_PAYMENTS__WEBHOOK_SECRET",
            webhook_secret.clone(),
        ),
        // The campaign is one address and a few busy users: abuse limits would only refuse it.
        ("BOUNTYLINE_LIMITS__AUTH_PER_MINUTE", "0".into()),
        ("BOUNTYLINE_LIMITS__COMMANDS_PER_MINUTE", "0".into()),
        ("BOUNTYLINE_DB_POOL_SIZE", "8".into()),
        ("RUST_LOG", "warn,bountyline=info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(match defect {
        Some(defects::Defect::Server(name)) => Some(("BOUNTYLINE_DEFECTS".into(), name.into())),
        _ => None,
    })
    .collect();
    let migrate = std::process::Command::new(&args.bin)
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .context("bountyline migrate")?;
    anyhow::ensure!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // Every process reaches Postgres and NATS through fault proxies of its own (its own
    // wire); the campaign's own checks go straight to them.
    let (mut processes, mut wires) = (Vec::new(), Vec::new());
    let roles = (0..args.workers).map(|i| (Role::Worker, i));
    for (role, i) in roles.chain((0..args.apis).map(|i| (Role::Api, i))) {
        let wire = Wires::start(&pg, &nats).await?;
        let env = wire.env(&env);
        processes.push(Process::new(role, i, &args.bin, &env, dir)?);
        wires.push(wire);
    }
    for process in &mut processes {
        let took = process.start().await?;
        say(&format!("{} ready in {took:.1?}", process.name));
    }
    let pool = bountyline::db::pool_options(4, bountyline::db::CONNECTION_LIFETIME)
        .connect(&pg.url("bountyline"))
        .await?;
    let apis: Vec<String> = processes.iter().filter_map(Process::base_url).collect();
    let mut deployment = Deployment {
        pg,
        nats,
        processes,
        pool,
        wires,
    };

    let mut world = World::new(apis, webhook_secret, args.seed);
    world.register(args.clients).await?;
    let due = |i: usize| args.ops * (i + 1) / (args.faults + 1);
    if args.faults > 0 {
        world.allowed.store(due(0), Ordering::Relaxed);
    }
    let world = Arc::new(world);
    say(&format!(
        "{} operations from {} clients, {} faults, {} APIs, {} workers",
        args.ops, args.clients, args.faults, args.apis, args.workers
    ));
    let per_client = args.ops.div_ceil(args.clients);
    let clients: Vec<_> = (0..args.clients)
        .map(|user| {
            let world = world.clone();
            let rng =
                StdRng::seed_from_u64(args.seed.wrapping_mul(1_000_003).wrapping_add(user as u64));
            tokio::spawn(async move { world.client(user, per_client, rng).await })
        })
        .collect();

    let mut injected: Vec<Injected> = Vec::new();
    let mut order = Vec::new();
    let mut last_fault_end = Instant::now();
    for i in 0..args.faults {
        while world.done.load(Ordering::Relaxed) < due(i)
            && !clients.iter().all(|c| c.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let next = if i + 1 < args.faults {
            due(i + 1)
        } else {
            usize::MAX
        };
        world.allowed.store(next, Ordering::Relaxed);
        let fault = Fault::pick(&mut rng, i, &mut order);
        let done = deployment.inject(fault, &mut rng).await?;
        say(&format!(
            "fault {}: {:?} on {} after {} operations{}",
            i + 1,
            done.fault,
            done.target,
            world.done.load(Ordering::Relaxed),
            done.recovery
                .map(|r| format!(", ready again in {r:.1?}"))
                .unwrap_or_default()
        ));
        last_fault_end = Instant::now();
        injected.push(done);
    }
    for client in clients {
        client.await?;
    }
    // Lag is owed to the faults only once the load has stopped too: measure from whichever
    // came last.
    let calm = Instant::now().max(last_fault_end);
    say("operations done; waiting for the pipeline to settle");

    let mut violations = Vec::new();
    for done in &injected {
        if done.recovery.is_some_and(|r| r > READY_WITHIN) {
            violations.push(format!(
                "{} took {:?} to be ready after {:?}",
                done.target, done.recovery, done.fault
            ));
        }
    }
    let settled = settle(&deployment.pool, PATIENCE).await?;
    let took = calm.elapsed();
    say(&format!(
        "lag zero {took:.1?} after the last fault and the last operation"
    ));
    if !settled || took > SETTLED_WITHIN + Duration::from_secs(1) && args.faults > 0 {
        violations.push(format!(
            "lag was not back to zero within {SETTLED_WITHIN:?} of the last fault and operation ({took:.1?})"
        ));
    }

    let mut journal = world.journal.lock().unwrap().clone();
    report(&journal);
    violations.extend(resolve_unknowns(&world, &mut journal, &mut rng).await);
    if let Some(defect) = defect {
        let wrote = defect.write(&deployment.pool, &journal).await?;
        say(&format!(
            "running with the defect {defect:?} on purpose {wrote}"
        ));
    }
    if !settle(&deployment.pool, PATIENCE).await? {
        violations.push("the pipeline did not settle after the retries".into());
    }

    // Quiesce before checking, so that nothing appends while the checks compare: no more
    // requests, then every lease the clients left run out and expired by the workers, then
    // the workers stop once everything is applied.
    for api in deployment
        .processes
        .iter_mut()
        .filter(|p| p.role == Role::Api)
    {
        api.terminate()?;
    }
    if !leases_expired(&deployment.pool).await? || !settle(&deployment.pool, PATIENCE).await? {
        violations.push("leases left by the clients were not expired and applied in time".into());
    }
    for worker in deployment
        .processes
        .iter_mut()
        .filter(|p| p.role == Role::Worker)
    {
        worker.terminate()?;
    }

    let nats = async_nats::connect(deployment.nats.url()).await?;
    let js = async_nats::jetstream::new(nats);
    let stream = bountyline::nats::Names::new(PREFIX).stream();
    let negative_reads = world.negative_reads.lock().unwrap().clone();
    let pool = &deployment.pool;
    violations.extend(checks::answered_commands_are_stored(pool, &journal).await?);
    violations.extend(checks::every_event_published_and_applied(pool, &js, &stream).await?);
    violations.extend(checks::projections_equal_rebuilds(pool, privacy_key).await?);
    violations.extend(checks::money_is_conserved(pool, &negative_reads).await?);
    violations.extend(checks::leases_are_exclusive(pool, &journal).await?);
    let users: Vec<uuid::Uuid> = world.users.iter().map(|u| u.id).collect();
    violations.extend(checks::one_effect_per_key(pool, &journal, &users).await?);
    violations.extend(checks::answers_name_their_own_events(pool, &journal, &users).await?);
    violations.extend(checks::money_matches_the_clients(pool, &journal, &users).await?);

    for process in &mut deployment.processes {
        process.terminate()?;
    }
    deployment.nats.stop()?;
    deployment.pool.close().await;
    deployment.pg.stop("fast")?;
    Ok(violations)
}

/// Waits (bounded) until the relay and every projection have reached the store's head.
async fn settle(pool: &PgPool, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut stable = 0;
    loop {
        let lagging: Option<i64> = sqlx::query_scalar(
            "WITH head AS (SELECT coalesce(max(position), 0) AS p FROM events) \
             SELECT (SELECT count(*) FROM projection_checkpoints, head WHERE position < head.p) \
                  + (SELECT count(*) FROM relay_checkpoints, head WHERE position < head.p) \
                  + (SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM relay_checkpoints)",
        )
        .fetch_one(pool)
        .await
        .ok();
        // Twice in a row, so that a fault's last retries have also landed.
        stable = if lagging == Some(0) { stable + 1 } else { 0 };
        if stable >= 2 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (bounded) until no task is leased: the leases clients never gave back have run out
/// and the workers' scheduler has put those tasks back in their queues.
async fn leases_expired(pool: &PgPool) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(world::LEASE_SECONDS) + PATIENCE;
    loop {
        let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'claimed'")
            .fetch_one(pool)
            .await?;
        if leased == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Retries every request whose outcome is unknown with its Idempotency-Key (webhooks: the same
/// delivery) until it answers, then once more: both answers must agree.
async fn resolve_unknowns(
    world: &World,
    journal: &mut [world::Record],
    rng: &mut StdRng,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut resolved = 0;
    for record in journal.iter_mut() {
        let request = &record.request;
        if !record.outcome.is_unknown() || (request.key.is_none() && !request.webhook) {
            continue;
        }
        let mut answer = Outcome::Unknown("not retried".into());
        // A key whose request died with its process stays "in progress" until the server
        // deems it stale (60 s), then recovers it: a client keeps retrying that long.
        let deadline = Instant::now() + RETRY_FOR;
        while Instant::now() < deadline {
            answer = world.send(request, rng).await;
            if !answer.is_unknown() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if answer.is_unknown() {
            out.push(format!(
                "{} {} never resolved: {answer:?}",
                request.method, request.path
            ));
            continue;
        }
        let again = world.send(request, rng).await;
        if !checks::same_answer(&answer, &again, request.webhook) {
            out.push(format!(
                "{} {} answered {answer:?} then {again:?} to the same key",
                request.method, request.path
            ));
        }
        record.outcome = answer;
        resolved += 1;
    }
    say(&format!("{resolved} unknown outcomes resolved by retrying"));
    out.truncate(10);
    out
}

/// How the requests ended, with refusals and unknown outcomes by status.
fn report(journal: &[world::Record]) {
    let mut ok = 0;
    let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
    for record in journal {
        let key = match &record.outcome {
            Outcome::Ok(..) => {
                ok += 1;
                continue;
            }
            Outcome::Refused(status, _) => status.to_string(),
            Outcome::Unknown(why) => format!("unknown ({})", why.split(' ').next().unwrap_or("")),
        };
        *by_status.entry(key).or_default() += 1;
    }
    let rest: Vec<String> = by_status.iter().map(|(k, n)| format!("{n} {k}")).collect();
    say(&format!(
        "{} requests: {ok} ok, {}",
        journal.len(),
        rest.join(", ")
    ));
}
