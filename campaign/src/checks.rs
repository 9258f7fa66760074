//! What must hold once everything has settled, whatever the faults did. Each check returns
//! the violations it found, described so that a person can start looking.

use async_nats::jetstream::{self, consumer};
use bountyline_projections::rebuild::{build_shadow, diff};
use futures::StreamExt;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::world::{Outcome, Record, Request};

pub type Violations = Vec<String>;

/// Every command answered 2xx has its events; no aggregate has a gap or a duplicate.
pub async fn answered_commands_are_stored(
    pool: &PgPool,
    journal: &[Record],
) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let positions: BTreeSet<i64> = journal
        .iter()
        .filter(|r| r.request.method == reqwest::Method::POST)
        .filter_map(|r| match &r.outcome {
            Outcome::Ok(_, body) => body["position"].as_i64(),
            _ => None,
        })
        .filter(|p| *p > 0)
        .collect();
    let wanted: Vec<i64> = positions.iter().copied().collect();
    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events WHERE position = ANY($1)")
            .bind(&wanted)
            .fetch_all(pool)
            .await?;
    let stored: BTreeSet<i64> = stored.into_iter().collect();
    for missing in positions.difference(&stored).take(5) {
        out.push(format!(
            "an acknowledged command's position {missing} is not in the store"
        ));
    }
    let broken: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, count(*), min(sequence), max(sequence) FROM events \
         GROUP BY 1, 2 HAVING count(*) <> max(sequence) OR min(sequence) <> 1 LIMIT 5",
    )
    .fetch_all(pool)
    .await?;
    for (kind, id, count, min, max) in broken {
        out.push(format!(
            "{kind} {id}: {count} events with sequences {min}..={max}"
        ));
    }
    Ok(out)
}

/// The event ids in Postgres, in JetStream and applied by every projection are the same set.
pub async fn every_event_published_and_applied(
    pool: &PgPool,
    js: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(pool)
        .await?;
    let stored: BTreeSet<String> = stored.into_iter().map(|id| id.to_string()).collect();
    let published = published_ids(js, stream).await?;
    let unpublished = stored.difference(&published).count();
    let unknown = published.difference(&stored).count();
    if unpublished > 0 {
        out.push(format!(
            "{unpublished} stored events never reached JetStream"
        ));
    }
    if unknown > 0 {
        out.push(format!("{unknown} JetStream messages are not in the store"));
    }
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(pool)
        .await?;
    let behind: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, position FROM projection_checkpoints WHERE position <> $1",
    )
    .bind(head)
    .fetch_all(pool)
    .await?;
    for (projection, at) in behind {
        out.push(format!(
            "projection {projection} applied up to {at}, the store holds {head}"
        ));
    }
    let parked: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT projection, position, error FROM parked_events LIMIT 5")
            .fetch_all(pool)
            .await?;
    for (projection, position, error) in parked {
        out.push(format!(
            "projection {projection} parked position {position}: {error}"
        ));
    }
    Ok(out)
}

async fn published_ids(js: &jetstream::Context, stream: &str) -> anyhow::Result<BTreeSet<String>> {
    let stream = js.get_stream(stream).await?;
    let expected = stream.get_info().await?.state.messages;
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = ordered.messages().await?;
    let mut ids = BTreeSet::new();
    let mut seen = 0;
    while seen < expected {
        let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(10), messages.next()).await
        else {
            anyhow::bail!("JetStream delivered {seen} of {expected} messages");
        };
        let message = message?;
        seen += 1;
        if let Some(id) = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            ids.insert(id.as_str().to_owned());
        }
    }
    Ok(ids)
}

/// Every projection equals a rebuild from scratch, row for row; the rebuild opens people's
/// texts under the deployment's `privacy_key`, as its workers do.
pub async fn projections_equal_rebuilds(
    pool: &PgPool,
    privacy_key: [u8; 32],
) -> anyhow::Result<Violations> {
    let keyring = bountyline::privacy::Keyring::with_key(
        pool.clone(),
        privacy_key,
        std::time::Duration::from_secs(1),
    );
    let opener = bountyline::privacy::Opener::new(keyring);
    let mut out = Vec::new();
    for projection in bountyline::workers::projections(&opener) {
        build_shadow(pool, projection.as_ref(), None, &|_, _| {}).await?;
        for (table, differing) in diff(pool, projection.as_ref()).await? {
            if differing != 0 {
                out.push(format!(
                    "{}: {differing} rows of {table} differ from a rebuild",
                    projection.name()
                ));
            }
        }
    }
    Ok(out)
}

/// Money is conserved to the cent, no balance was ever negative, and each escrow hold was
/// resolved exactly once.
pub async fn money_is_conserved(
    pool: &PgPool,
    negative_reads: &[String],
) -> anyhow::Result<Violations> {
    let mut out: Violations = negative_reads
        .iter()
        .take(5)
        .map(|r| format!("a client read a negative balance: {r}"))
        .collect();
    let amount = |event: &str| {
        format!(
            "SELECT coalesce(sum((payload -> event_type ->> 'amount')::bigint), 0)::bigint \
             FROM events WHERE event_type = '{event}'"
        )
    };
    let deposited: i64 = sqlx::query_scalar(&amount("DepositConfirmed"))
        .fetch_one(pool)
        .await?;
    let credited: i64 = sqlx::query_scalar(&amount("WalletCredited"))
        .fetch_one(pool)
        .await?;
    let withdrawn: i64 = sqlx::query_scalar(&amount("WithdrawalCompleted"))
        .fetch_one(pool)
        .await?;
    let books: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(available + held), 0)::bigint FROM wallet_balances",
    )
    .fetch_one(pool)
    .await?;
    if books != deposited + credited - withdrawn {
        out.push(format!(
            "wallets hold {books}, but deposits {deposited} + credits {credited} - withdrawals {withdrawn} = {}",
            deposited + credited - withdrawn
        ));
    }
    let negative: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Wallet' AND \
         ((payload -> event_type ->> 'available')::bigint < 0 OR (payload -> event_type ->> 'held')::bigint < 0)",
    )
    .fetch_one(pool)
    .await?;
    if negative > 0 {
        out.push(format!("{negative} wallet events leave a negative balance"));
    }
    let twice: Vec<String> = sqlx::query_scalar(
        "SELECT payload -> event_type ->> 'payment_id' FROM events \
         WHERE event_type IN ('HoldReleased', 'HoldRefunded') GROUP BY 1 HAVING count(*) > 1 LIMIT 5",
    )
    .fetch_all(pool)
    .await?;
    for payment in twice {
        out.push(format!(
            "escrow hold of payment {payment} resolved more than once"
        ));
    }
    let unresolved: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT p.id, b.status FROM payments p JOIN bounties b ON b.id = p.bounty_id \
         WHERE p.status IN ('requested', 'releasing', 'refunding') \
            OR (p.status = 'held' AND b.status IN ('completed', 'cancelled', 'expired')) LIMIT 5",
    )
    .fetch_all(pool)
    .await?;
    for (payment, bounty) in unresolved {
        out.push(format!(
            "payment {payment} is unresolved while its bounty is {bounty}"
        ));
    }
    // A funded flow waits for people (the bounty's outcome); any other open step is work the
    // process managers still owe.
    let stuck: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT flow_id, step, last_error FROM process_flows WHERE NOT done AND step <> 'funded' LIMIT 5",
    )
            .fetch_all(pool)
            .await?;
    for (flow, step, error) in stuck {
        out.push(format!("money flow {flow} stuck at {step}: {error:?}"));
    }
    Ok(out)
}

/// A task is leased to one worker at a time: in every task's history a claim follows only a
/// release, and no two clients were ever granted the same attempt.
pub async fn leases_are_exclusive(pool: &PgPool, journal: &[Record]) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, event_type FROM events WHERE aggregate_type = 'Task' \
         ORDER BY aggregate_id, sequence",
    )
    .fetch_all(pool)
    .await?;
    let mut held: HashMap<String, bool> = HashMap::new();
    for (task, event) in events {
        let leased = held.entry(task.clone()).or_default();
        match event.as_str() {
            "TaskClaimed" if *leased => out.push(format!("task {task} claimed while leased")),
            "TaskClaimed" => *leased = true,
            "TaskCompleted" | "TaskFailed" | "TaskLeaseExpired" | "TaskCancelled" => {
                *leased = false
            }
            _ => {}
        }
    }
    let mut granted: HashMap<(String, i64), usize> = HashMap::new();
    for record in journal.iter().filter(|r| r.request.kind == "claim") {
        if let Outcome::Ok(200, body) = &record.outcome {
            let key = (
                body["id"].to_string(),
                body["attempt"].as_i64().unwrap_or(-1),
            );
            *granted.entry(key).or_default() += 1;
        }
    }
    for ((task, attempt), times) in granted {
        if times > 1 {
            out.push(format!(
                "attempt {attempt} of task {task} granted to {times} claims"
            ));
        }
    }
    out.truncate(10);
    Ok(out)
}

/// Two answers to one keyed request agree: a replay is the same answer. A webhook delivered
/// again is acknowledged as a duplicate instead.
pub fn same_answer(first: &Outcome, second: &Outcome, webhook: bool) -> bool {
    match (first, second) {
        (Outcome::Ok(200, _), Outcome::Ok(200, again)) if webhook => again["status"] == "duplicate",
        (Outcome::Ok(a, x), Outcome::Ok(b, y))
        | (Outcome::Refused(a, x), Outcome::Refused(b, y)) => a == b && x == y,
        _ => false,
    }
}

/// The user id and Idempotency-Key of every keyed command the clients sent (webhooks aside).
fn keyed(journal: &[Record], users: &[uuid::Uuid]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = journal
        .iter()
        .filter(|r| !r.request.webhook)
        .filter_map(|r| Some((users[r.request.user].to_string(), r.request.key.clone()?)))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// At most one command acted per key the clients sent: under one actor and Idempotency-Key
/// the store holds the events of one command, and each webhook delivery (by its reference)
/// took effect once.
pub async fn one_effect_per_key(
    pool: &PgPool,
    journal: &[Record],
    users: &[uuid::Uuid],
) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let (actors, keys): (Vec<String>, Vec<String>) = keyed(journal, users).into_iter().unzip();
    let doubled: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT e.metadata ->> 'actor', e.metadata ->> 'idempotency_key', \
                count(DISTINCT e.metadata ->> 'command_id') \
           FROM events e JOIN unnest($1::text[], $2::text[]) AS k(actor, key) \
             ON e.metadata ->> 'idempotency_key' = k.key AND e.metadata ->> 'actor' = k.actor \
          GROUP BY 1, 2 HAVING count(DISTINCT e.metadata ->> 'command_id') > 1 LIMIT 5",
    )
    .bind(&actors)
    .bind(&keys)
    .fetch_all(pool)
    .await?;
    for (actor, key, commands) in doubled {
        out.push(format!(
            "{commands} commands acted under user {actor}'s Idempotency-Key {key}"
        ));
    }
    let references: Vec<String> = journal
        .iter()
        .filter(|r| r.request.webhook)
        .filter_map(|r| r.request.body["reference"].as_str().map(str::to_owned))
        .collect();
    let repeated: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload -> event_type ->> 'reference', count(*) FROM events \
          WHERE event_type IN ('DepositConfirmed', 'WithdrawalCompleted', 'WithdrawalFailed') \
            AND payload -> event_type ->> 'reference' = ANY($1) \
          GROUP BY 1 HAVING count(*) > 1 LIMIT 5",
    )
    .bind(&references)
    .fetch_all(pool)
    .await?;
    for (reference, times) in repeated {
        out.push(format!("delivery {reference} took effect {times} times"));
    }
    Ok(out)
}

/// Every acknowledged keyed command was answered with its own events: the position (and
/// aggregate) it was told are those of the last event stored under its key. A command that
/// stored nothing (a repeat the aggregate ignored) is answered with where its aggregate stood.
pub async fn answers_name_their_own_events(
    pool: &PgPool,
    journal: &[Record],
    users: &[uuid::Uuid],
) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let told: Vec<(&Request, i64, Option<&str>)> = journal
        .iter()
        .filter(|r| !r.request.webhook && r.request.key.is_some())
        .filter_map(|r| match &r.outcome {
            Outcome::Ok(_, body) => {
                Some((&r.request, body["position"].as_i64()?, body["id"].as_str()))
            }
            _ => None,
        })
        .collect();
    let actors: Vec<String> = told
        .iter()
        .map(|(r, ..)| users[r.user].to_string())
        .collect();
    let keys: Vec<&str> = told.iter().filter_map(|(r, ..)| r.key.as_deref()).collect();
    let stored: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT k.actor, k.key, max(e.position), max(e.aggregate_id) \
           FROM unnest($1::text[], $2::text[]) AS k(actor, key) \
           JOIN events e ON e.metadata ->> 'idempotency_key' = k.key \
                        AND e.metadata ->> 'actor' = k.actor \
          GROUP BY 1, 2",
    )
    .bind(&actors)
    .bind(&keys)
    .fetch_all(pool)
    .await?;
    let stored: HashMap<(String, String), (i64, String)> = stored
        .into_iter()
        .map(|(actor, key, position, id)| ((actor, key), (position, id)))
        .collect();
    for ((request, position, id), actor) in told.iter().zip(&actors) {
        let key = request.key.clone().unwrap_or_default();
        let Some((own, aggregate)) = stored.get(&(actor.clone(), key.clone())) else {
            continue;
        };
        if own != position || id.is_some_and(|id| id != aggregate) {
            out.push(format!(
                "{} {} (key {key}) was told position {position} of {id:?}; its own last event is \
                 at {own} of {aggregate}",
                request.method, request.path
            ));
        }
    }
    out.truncate(10);
    Ok(out)
}

/// The money the clients saw acknowledged: every withdrawal a client was told was requested
/// is stored once, under the id and for the amount it was told, and no other is; and the
/// wallets hold what the acknowledged deposits brought in less the acknowledged completed
/// withdrawals (escrow moves money between wallets, never in or out).
pub async fn money_matches_the_clients(
    pool: &PgPool,
    journal: &[Record],
    users: &[uuid::Uuid],
) -> anyhow::Result<Violations> {
    let mut out = Vec::new();
    let mut told: BTreeSet<(String, String, i64)> = BTreeSet::new();
    let mut deposits: HashMap<String, i64> = HashMap::new();
    let mut paid_out: HashMap<String, i64> = HashMap::new();
    for record in journal {
        let Outcome::Ok(_, answer) = &record.outcome else {
            continue;
        };
        let (request, amount) = (&record.request, record.request.body["amount"].as_i64());
        match (request.kind, amount) {
            ("withdraw", Some(amount)) => {
                let id = answer["withdrawal_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                told.insert((users[request.user].to_string(), id, amount));
            }
            ("deposit", Some(amount)) => {
                let reference = request.body["reference"].to_string();
                deposits.insert(reference, amount);
            }
            ("settle-withdrawal", Some(amount))
                if request.body["event"] == "withdrawal.succeeded" =>
            {
                paid_out.insert(request.body["withdrawal_id"].to_string(), amount);
            }
            _ => {}
        }
    }
    let stored: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, payload -> event_type ->> 'withdrawal_id', \
                (payload -> event_type ->> 'amount')::bigint \
           FROM events WHERE event_type = 'WithdrawalRequested'",
    )
    .fetch_all(pool)
    .await?;
    let mut stored_set = BTreeSet::new();
    for withdrawal in stored {
        if !stored_set.insert(withdrawal.clone()) {
            out.push(format!("withdrawal {withdrawal:?} is stored twice"));
        }
    }
    for missing in told.difference(&stored_set).take(5) {
        out.push(format!(
            "withdrawal {missing:?} was acknowledged but is not stored"
        ));
    }
    for extra in stored_set.difference(&told).take(5) {
        out.push(format!(
            "withdrawal {extra:?} is stored but no client was told of it"
        ));
    }
    let model = deposits.values().sum::<i64>() - paid_out.values().sum::<i64>();
    let books: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(available + held), 0)::bigint FROM wallet_balances",
    )
    .fetch_one(pool)
    .await?;
    if books != model {
        out.push(format!(
            "wallets hold {books}; the clients were told of deposits {} less payouts {} = {model}",
            deposits.values().sum::<i64>(),
            paid_out.values().sum::<i64>()
        ));
    }
    Ok(out)
}
