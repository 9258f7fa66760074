//! One durable consumer feeds every projection of a worker process: each event crosses NATS
//! and is decoded once, not once per projection (seven consumers took every event seven times,
//! NATS a third of a core under the held load), while each projection keeps its own
//! checkpoint and reads only the events of its types.

mod common;

use async_trait::async_trait;
use bountyline::nats::Names;
use bountyline_projections::{checkpoint, Projection, ProjectionError, StoredEvent};
use common::*;
use futures::TryStreamExt;
use sqlx::{Postgres, Transaction};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn a_worker_process_follows_the_event_stream_through_one_durable_consumer() {
    let app = TestApp::spawn().await;
    let user = app.user("feeds").await;
    app.create_task(&user, "feeds", "one", 1).await;
    app.settle().await;

    let js = app.jetstream().await;
    let names = Names::new(&app.settings.nats_prefix);
    let stream = js.get_stream(names.stream()).await.expect("stream");
    let infos: Vec<_> = stream.consumers().try_collect().await.expect("consumers");
    let durables: Vec<_> = infos
        .iter()
        .filter_map(|info| info.config.durable_name.clone())
        .collect();
    assert_eq!(durables, [names.projections_durable()]);
    app.shutdown.trigger().await;
}

/// Records the position and aggregate type of every event it is given.
struct Seen {
    name: &'static str,
    types: Option<&'static [&'static str]>,
    seen: Arc<Mutex<Vec<(i64, String)>>>,
}

type Record = Arc<Mutex<Vec<(i64, String)>>>;

fn seen(
    name: &'static str,
    types: Option<&'static [&'static str]>,
    seen: &Record,
) -> Arc<dyn Projection> {
    Arc::new(Seen {
        name,
        types,
        seen: seen.clone(),
    })
}

/// Every stored event's position and aggregate type, in position order.
async fn stored(app: &TestApp) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT position, aggregate_type FROM events ORDER BY position")
        .fetch_all(&app.pool)
        .await
        .expect("events")
}

#[async_trait]
impl Projection for Seen {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        self.types
    }

    async fn apply(
        &self,
        _tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let mut seen = self.seen.lock().expect("seen");
        seen.push((event.position, event.aggregate_type.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn one_delivery_feeds_each_projection_the_events_of_its_types() {
    let app = TestApp::spawn().await;
    let user = app.user("typed").await;
    let js = app.jetstream().await;
    let everything = Record::default();
    let tasks_only = Record::default();
    let runner = app.runner(
        js,
        "seen",
        vec![
            seen("seen-everything", None, &everything),
            seen("seen-tasks", Some(&["Task"]), &tasks_only),
        ],
    );
    let running = RunningRunner::start(runner);

    app.create_task(&user, "typed", "a task", 1).await;
    app.deposit(&user, 2_500, "USD").await;
    app.create_task(&user, "typed", "another", 1).await;
    app.settle().await;
    let head = app.head().await;
    for name in ["seen-everything", "seen-tasks"] {
        wait_until(Duration::from_secs(20), name, || async {
            checkpoint::read(&app.pool, name).await.expect("checkpoint") >= head
        })
        .await;
    }

    let stored = stored(&app).await;
    let tasks: Vec<_> = stored
        .iter()
        .filter(|(_, t)| t == "Task")
        .cloned()
        .collect();
    assert!(stored.len() > tasks.len(), "no other type among {stored:?}");
    assert_eq!(*everything.lock().expect("seen"), stored);
    assert_eq!(*tasks_only.lock().expect("seen"), tasks);

    running.stop().await;
    app.shutdown.trigger().await;
}

#[tokio::test]
async fn projections_behind_catch_up_from_one_read_of_the_store_each_from_its_own_checkpoint() {
    let app = TestApp::spawn().await;
    let user = app.user("behind").await;
    app.deposit(&user, 2_500, "USD").await;
    for n in 0..6 {
        app.create_task(&user, "behind", &format!("task {n}"), 1)
            .await;
    }
    app.settle().await;
    let stored = stored(&app).await;
    let head = app.head().await;
    // One projection starts halfway; the other two from nothing.
    let halfway = stored[stored.len() / 2].0;
    let mut tx = app.pool.begin().await.expect("begin");
    checkpoint::lock(&mut tx, "seen-late").await.expect("lock");
    checkpoint::store(&mut tx, "seen-late", halfway)
        .await
        .expect("store");
    tx.commit().await.expect("commit");

    let (all, late, bounties) = (Record::default(), Record::default(), Record::default());
    let js = app.jetstream().await;
    // Spans of three positions: the backlog is read and applied in several.
    let runner = bountyline::workers::projection_runner(
        &app.pool,
        &js,
        &Names::new(&app.settings.nats_prefix),
        &bountyline::config::WorkerSettings {
            projection_catch_up_batch: 3,
            ..app.settings.worker.clone()
        },
        format!("{}-behind", app.settings.nats_prefix),
        vec![
            seen("seen-all", None, &all),
            seen("seen-late", None, &late),
            seen("seen-bounties", Some(&["Bounty"]), &bounties),
        ],
    );
    let running = RunningRunner::start(runner);
    for name in ["seen-all", "seen-late", "seen-bounties"] {
        wait_until(Duration::from_secs(20), name, || async {
            checkpoint::read(&app.pool, name).await.expect("checkpoint") >= head
        })
        .await;
    }

    assert_eq!(
        *all.lock().expect("seen"),
        stored,
        "every event, once, in order"
    );
    let beyond: Vec<_> = stored
        .iter()
        .filter(|(p, _)| *p > halfway)
        .cloned()
        .collect();
    assert!(!beyond.is_empty() && beyond.len() < stored.len());
    assert_eq!(
        *late.lock().expect("seen"),
        beyond,
        "what lay beyond its checkpoint, once"
    );
    assert!(bounties.lock().expect("seen").is_empty());
    assert_eq!(
        checkpoint::read(&app.pool, "seen-bounties")
            .await
            .expect("checkpoint"),
        head,
        "a projection given nothing still reaches the head"
    );

    running.stop().await;
    app.shutdown.trigger().await;
}
