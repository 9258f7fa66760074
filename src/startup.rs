//! Builds and runs bountyline: the HTTP API, the workers, or both, in one process under one
//! shutdown signal. The listener binds before `build` returns, so port 0 works (tests).

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use async_nats::jetstream;
use bountyline_projections::tasks::{self, TaskView};
use bountyline_projections::{EventReader, Projection};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::csrf::Csrf;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::AuthKeys;
use crate::commands::CommandBus;
use crate::config::Settings;
use crate::http::batched::Batched;
use crate::http::consistency::ProjectionProgress;
use crate::http::limits::Limits;
use crate::http::read_cache::ReadCache;
use crate::nats::Names;
use crate::privacy::{Keyring, Opener};
use crate::relay::Relay;
use crate::sagas::ProcessManagers;
use crate::sse::{Hub, StatsFeed};
use crate::state::AppState;
use crate::{db, http, nats, telemetry, workers};

/// Board pages one API process keeps (a page of 50 bounties is about 25 kB, of 200 about
/// 100 kB) and for how long at most: a board page is served from memory only while the
/// bounties read model has not moved, and this bounds its age should the read model's
/// announcements be lost.
const BOARD_PAGES_KEPT: usize = 64;
const BOARD_PAGE_TTL: Duration = Duration::from_secs(1);
/// Task lookups by id read at once (each a connection of the pool), and ids per read.
const TASK_LOOKUP_SLOTS: usize = 4;
const TASK_LOOKUPS_PER_READ: usize = 64;

/// Which parts this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub api: bool,
    pub workers: bool,
}

impl Parts {
    pub const API: Parts = Parts {
        api: true,
        workers: false,
    };
    pub const WORKERS: Parts = Parts {
        api: false,
        workers: true,
    };
    pub const ALL: Parts = Parts {
        api: true,
        workers: true,
    };
}

pub struct Application {
    port: Option<u16>,
    server: Option<Server>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    shutdown: Shutdown,
    pool: PgPool,
}

/// Stops a running application: background loops first (SSE streams end cleanly), then the
/// HTTP server, which lets in-flight requests finish.
#[derive(Clone)]
pub struct Shutdown {
    signal: Arc<watch::Sender<bool>>,
    server: Option<ServerHandle>,
}

impl Shutdown {
    pub async fn trigger(&self) {
        self.signal.send_replace(true);
        if let Some(server) = &self.server {
            server.stop(true).await;
        }
    }
}

impl Application {
    pub async fn build(settings: Settings, parts: Parts) -> anyhow::Result<Self> {
        if parts.api {
            settings.require_jwt_secret()?;
            crate::auth::password::limit_hashing(settings.auth.hashing_concurrency);
        }
        // Every part seals or opens people's texts: refused at start without the key.
        settings.privacy_key()?;
        let settings = Arc::new(settings);
        let pool = db::connect(&settings).await?;
        let privacy = Opener::new(Keyring::new(pool.clone(), &settings)?);
        let nats_client = nats::connect(&settings.nats_url).await?;
        let js = jetstream::new(nats_client.clone());
        let names = Names::new(&settings.nats_prefix);
        nats::ensure_stream(
            &js,
            &names,
            Duration::from_secs(settings.nats_stream_max_age_secs),
            Duration::from_secs(settings.nats_duplicate_window_secs),
        )
        .await?;
        let commands = CommandBus::new(pool.clone());
        let (signal, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        // Every process that appends (the API; workers for their process managers and
        // expiries) wakes the relay.
        tasks.push((
            "appended-signal",
            tokio::spawn(commands.appended().clone().publish(
                nats_client.clone(),
                names.appended(),
                shutdown_rx.clone(),
            )),
        ));

        if parts.workers {
            spawn_workers(
                &settings,
                &pool,
                &js,
                &names,
                &commands,
                &privacy,
                &shutdown_rx,
                &mut tasks,
            );
        }

        let (server, port) = if parts.api {
            let progress = ProjectionProgress::new(pool.clone());
            tasks.push((
                "progress",
                tokio::spawn(progress.clone().listen(
                    nats_client.clone(),
                    names.all_progress(),
                    shutdown_rx.clone(),
                )),
            ));
            let reader = EventReader::new(pool.clone());
            let start = reader.head().await?;
            let hub = Hub::new(
                reader,
                settings.sse.hub_capacity,
                shutdown_rx.clone(),
                start,
            )
            .opening(privacy.clone());
            tasks.push((
                "sse-hub",
                tokio::spawn(hub.clone().follow(js.clone(), names.clone())),
            ));
            let stats = StatsFeed::new(shutdown_rx.clone());
            tasks.push((
                "stats-feed",
                tokio::spawn(stats.clone().run(pool.clone(), progress.clone())),
            ));
            let state = AppState {
                settings: settings.clone(),
                pool: pool.clone(),
                commands: commands.clone(),
                progress,
                hub,
                stats,
                nats: nats_client.clone(),
                metrics: telemetry::metrics(),
                limits: Limits::new(
                    &settings.limits,
                    settings.http.max_in_flight,
                    Duration::from_millis(settings.http.admission_wait_ms),
                ),
                board: ReadCache::new("board", BOARD_PAGES_KEPT, BOARD_PAGE_TTL),
                privacy: privacy.clone(),
                queues: Default::default(),
            };
            let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))?;
            let port = listener.local_addr()?.port();
            (Some(serve(listener, state, &settings)?), Some(port))
        } else {
            (None, None)
        };
        let shutdown = Shutdown {
            signal: Arc::new(signal),
            server: server.as_ref().map(Server::handle),
        };
        Ok(Self {
            port,
            server,
            tasks,
            shutdown,
            pool,
        })
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs until the server stops (or, for a workers-only process, until shutdown is
    /// triggered), then waits for every background part and reports how each ended.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server,
            tasks,
            shutdown,
            ..
        } = self;
        match server {
            Some(server) => {
                server.await?;
                shutdown.signal.send_replace(true);
            }
            None => {
                let mut rx = shutdown.signal.subscribe();
                while !*rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            }
        }
        for (name, task) in tasks {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(())) => tracing::info!(part = name, "stopped"),
                Ok(Err(e)) => tracing::error!(part = name, error = %e, "ended abnormally"),
                Err(_) => tracing::warn!(part = name, "did not stop within 10 s"),
            }
        }
        Ok(())
    }
}

// The process's shared parts, each handed to several of the workers it starts.
#[allow(clippy::too_many_arguments)]
fn spawn_workers(
    settings: &Arc<Settings>,
    pool: &PgPool,
    js: &jetstream::Context,
    names: &Names,
    commands: &CommandBus,
    privacy: &Opener,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<(&'static str, JoinHandle<()>)>,
) {
    let relay = Relay {
        pool: pool.clone(),
        database_url: settings.database_url.expose_secret().to_owned(),
        js: js.clone(),
        names: names.clone(),
        batch: settings.worker.relay_batch,
        idle_poll: Duration::from_millis(settings.worker.relay_idle_poll_ms),
    };
    let rx = shutdown.clone();
    tasks.push((
        "relay",
        tokio::spawn(async move {
            if let Err(e) = relay.run(rx).await {
                tracing::error!(error = %e, "relay stopped");
            }
        }),
    ));
    // Process managers run through the same checkpointed runner as the read models, but are
    // never rebuilt (they act; they keep no read model).
    let process_managers: Arc<dyn Projection> = Arc::new(ProcessManagers::new(
        commands.clone(),
        privacy.keyring().clone(),
    ));
    let projections: Vec<_> = workers::projections(privacy)
        .into_iter()
        .chain([process_managers])
        .collect();
    tasks.push((
        "retired-consumers",
        tokio::spawn(retire_own_durables(
            js.clone(),
            names.clone(),
            projections.iter().map(|p| p.name()).collect(),
        )),
    ));
    let runner = workers::projection_runner(
        pool,
        js,
        names,
        &settings.worker,
        names.projections_durable(),
        projections,
    );
    tasks.push(("projections", tokio::spawn(runner.run(shutdown.clone()))));
    let interval = Duration::from_millis(settings.worker.lease_scan_interval_ms);
    tasks.push((
        "lease-expiry",
        tokio::spawn(workers::lease_expiry::run(
            pool.clone(),
            commands.clone(),
            interval,
            shutdown.clone(),
        )),
    ));
    tasks.push((
        "bounty-expiry",
        tokio::spawn(workers::bounty_expiry::run(
            pool.clone(),
            commands.clone(),
            interval,
            shutdown.clone(),
        )),
    ));
    tasks.push((
        "lag",
        tokio::spawn(workers::lag::run(
            pool.clone(),
            names.stream(),
            shutdown.clone(),
        )),
    ));
}

/// Deletes the durable consumers each projection had to itself before one fed them all: left
/// behind, JetStream would keep tracking what they never acknowledge. Best effort: one that
/// cannot be deleted now (NATS down) is tried again at the next start.
async fn retire_own_durables(js: jetstream::Context, names: Names, projections: Vec<&'static str>) {
    let Ok(stream) = js.get_stream(names.stream()).await else {
        return;
    };
    for projection in projections {
        let durable = names.own_durable(projection);
        if stream.delete_consumer(&durable).await.is_ok() {
            tracing::info!(%durable, "retired the projection's own consumer");
        }
    }
}

fn serve(listener: TcpListener, state: AppState, settings: &Settings) -> anyhow::Result<Server> {
    let auth_keys = web::Data::new(AuthKeys::new(&settings.auth));
    let csrf = web::Data::new(Csrf::new(
        &settings.auth.jwt_secret,
        &settings.http.allowed_origins,
    )?);
    let sessions = web::Data::new(Sessions::new(
        state.pool.clone(),
        std::time::Duration::from_millis(settings.auth.session_cache_ms),
    ));
    let pool = web::Data::new(state.pool.clone());
    let state = web::Data::new(state);
    let openapi = web::Data::new(http::openapi::Document::build()?);
    let body_limit = settings.http.body_limit_bytes;
    let server = HttpServer::new(move || {
        App::new()
            // The last wrapped runs first: request id, then the canonical path (what every
            // guard after it sees), then compression (gzip or brotli as the client accepts;
            // the live streams say `Content-Encoding: identity` and pass as they come), then
            // headers on everything, then CORS.
            .wrap(middleware::from_fn(http::guard::time_limit))
            .wrap(middleware::from_fn(http::guard::shed_load))
            .wrap(middleware::from_fn(http::guard::limit_auth))
            .wrap(middleware::from_fn(http::guard::problem_errors))
            .wrap(middleware::from_fn(http::guard::cors))
            .wrap(middleware::from_fn(http::guard::secure_defaults))
            .wrap(middleware::Compress::default())
            .wrap(middleware::from_fn(http::canonical::canonical_request))
            .wrap(middleware::from_fn(http::middleware::request_context))
            .app_data(state.clone())
            .app_data(pool.clone())
            .app_data(auth_keys.clone())
            .app_data(csrf.clone())
            .app_data(sessions.clone())
            .app_data(openapi.clone())
            // One per worker thread, its reads run on that thread: no hand-over between
            // threads on a lookup's way to Postgres and back.
            .app_data(web::Data::new(tasks_by_id(&pool)))
            .configure(|cfg| http::configure(cfg, body_limit))
    })
    // Without it, a stream's small messages wait for the client to acknowledge the ones before
    // them (Nagle), which a client delays by up to 40 ms: actix keeps the OS default otherwise.
    .tcp_nodelay(true)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.http.shutdown_timeout_secs)
    .run();
    Ok(server)
}

/// `GET /v1/tasks/{id}`'s reads: concurrent lookups gathered into shared queries.
fn tasks_by_id(pool: &PgPool) -> Batched<TaskView> {
    let pool = pool.clone();
    Batched::start(
        TASK_LOOKUP_SLOTS,
        TASK_LOOKUPS_PER_READ,
        |t| t.id,
        move |ids| {
            let pool = pool.clone();
            async move { tasks::query::get_many(&pool, &ids).await }
        },
    )
}
