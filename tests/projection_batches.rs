//! A projection that fell behind applies what is waiting in large transactions, not 128
//! messages at a time. The held load (docs/HELD-LOAD.md) found every live batch ending at 128
//! messages, tokio's cooperative budget, however many were waiting: with a transaction and a
//! round of follow-up commands per 128 events, the process managers fell further behind the
//! longer the load lasted.

mod common;

use async_nats::jetstream;
use async_trait::async_trait;
use bountyline::nats::Names;
use bountyline_projections::{checkpoint, Projection, ProjectionError, StoredEvent};
use common::*;
use futures::StreamExt;
use sqlx::{Postgres, Transaction};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Records the size of every batch it is given; its first batch waits for the test.
struct Recorder {
    sizes: Arc<Mutex<Vec<usize>>>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        "batch-recorder"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    async fn apply_batch(
        &self,
        _tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let first = {
            let mut sizes = self.sizes.lock().expect("sizes");
            sizes.push(events.len());
            sizes.len() == 1
        };
        if first {
            let _open = self.gate.acquire().await.expect("gate");
        }
        Ok(())
    }
}

const WAITING: usize = 1_000;

#[tokio::test]
async fn a_projection_behind_applies_what_waits_in_large_batches() {
    let app = TestApp::spawn().await;
    let user = app.user("batches").await;
    let stream = Names::new(&app.settings.nats_prefix).stream();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Semaphore::new(0));
    let recorder = Recorder {
        sizes: sizes.clone(),
        gate: gate.clone(),
    };
    let js = app.jetstream().await;
    let runner = app.runner(js.clone(), "batch-recorder", vec![Arc::new(recorder)]);
    let running = RunningRunner::start(runner);

    // The runner reads the stream once it has caught up from the store (nothing to catch up
    // here): only then is the first event sure to come live, with a pull request out.
    let durable = format!("{}-batch-recorder", app.settings.nats_prefix);
    let consumer_info = || async {
        let stream = js.get_stream(&stream).await.ok()?;
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer(&durable).await.ok()?;
        consumer.info().await.ok().cloned()
    };
    wait_until(Duration::from_secs(20), "the runner to pull", || async {
        consumer_info()
            .await
            .is_some_and(|info| info.num_waiting > 0)
    })
    .await;

    // The recorder's first batch holds it up while many more events are stored and published.
    app.create_task(&user, "batches", "the first", 1).await;
    wait_until(
        Duration::from_secs(20),
        "the first batch to arrive",
        || async { !sizes.lock().expect("sizes").is_empty() },
    )
    .await;
    let created: Vec<()> = futures::stream::iter(0..WAITING)
        .map(|i| {
            let (app, user) = (&app, &user);
            async move {
                app.create_task(user, "batches", &format!("waiting {i}"), 1)
                    .await;
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), WAITING);
    let head = app.head().await;
    app.wait_for_relay(head, Duration::from_secs(30)).await;

    // And JetStream has handed every one of them to the recorder's client (it asks for two
    // batches at a time).
    wait_until(
        Duration::from_secs(30),
        "the consumer to deliver them",
        || async {
            consumer_info()
                .await
                .is_some_and(|info| info.num_pending == 0 && info.num_ack_pending >= WAITING)
        },
    )
    .await;

    gate.add_permits(1);
    wait_until(
        Duration::from_secs(30),
        "the recorder to catch up",
        || async {
            checkpoint::read(&app.pool, "batch-recorder")
                .await
                .expect("checkpoint")
                >= head
        },
    )
    .await;

    let sizes = sizes.lock().expect("sizes").clone();
    let after_first: Vec<usize> = sizes[1..].to_vec();
    assert_eq!(
        after_first.iter().sum::<usize>(),
        WAITING,
        "batches {sizes:?}"
    );
    // All were waiting when the first batch ended: they come in one batch, or two if the
    // first pull had not yet brought them all in.
    assert!(
        after_first.len() <= 2 && after_first.iter().max() > Some(&128),
        "the waiting events came in batches of {after_first:?}"
    );

    running.stop().await;
    app.shutdown.trigger().await;
}

/// A batch is acknowledged with one ack (its last message acknowledges every one before it),
/// not one per message; a consumer left by an earlier version, acknowledging message by
/// message, is made again, and no event is missed across the change.
#[tokio::test]
async fn a_batch_is_acknowledged_whole_even_on_a_consumer_made_to_ack_each_message() {
    let app = TestApp::spawn().await;
    let user = app.user("acks").await;
    let stream_name = Names::new(&app.settings.nats_prefix).stream();
    let durable = format!("{}-batch-recorder", app.settings.nats_prefix);
    let js = app.jetstream().await;
    app.create_task(&user, "acks", "before the runner", 1).await;
    app.wait_for_relay(app.head().await, Duration::from_secs(20))
        .await;
    let stream = js.get_stream(&stream_name).await.expect("stream");
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("an old consumer");

    let recorder = Recorder {
        sizes: Arc::new(Mutex::new(Vec::new())),
        gate: Arc::new(Semaphore::new(1)),
    };
    let runner = app.runner(js.clone(), "batch-recorder", vec![Arc::new(recorder)]);
    let running = RunningRunner::start(runner);
    let consumer_info = || async {
        let stream = js.get_stream(&stream_name).await.ok()?;
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer(&durable).await.ok()?;
        consumer.info().await.ok().cloned()
    };
    wait_until(
        Duration::from_secs(20),
        "the consumer made again",
        || async {
            consumer_info().await.is_some_and(|info| {
                info.config.ack_policy == jetstream::consumer::AckPolicy::All
                    && info.num_waiting > 0
            })
        },
    )
    .await;

    for i in 0..50 {
        app.create_task(&user, "acks", &format!("after {i}"), 1)
            .await;
    }
    let head = app.head().await;
    wait_until(Duration::from_secs(30), "every event applied", || async {
        checkpoint::read(&app.pool, "batch-recorder")
            .await
            .expect("checkpoint")
            >= head
    })
    .await;
    wait_until(
        Duration::from_secs(10),
        "every delivery acknowledged",
        || async {
            consumer_info()
                .await
                .is_some_and(|info| info.num_ack_pending == 0 && info.delivered.stream_sequence > 0)
        },
    )
    .await;

    running.stop().await;
    app.shutdown.trigger().await;
}
