//! The `bountyline` command line: one binary, one subcommand per way of running it.

use bountyline_projections::Projection;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use crate::config::Settings;
use crate::privacy::{Keyring, Opener};
use crate::startup::{Application, Parts};
use crate::{db, telemetry, workers};

#[derive(Debug, Parser)]
#[command(
    name = "bountyline",
    version,
    about = "Event-sourced backend for a work marketplace: tasks, bounties, payments",
    long_about = "Event-sourced backend for a work marketplace.\n\n\
        Configuration comes from defaults, an optional TOML file (--config) and environment \
        variables: DATABASE_URL, NATS_URL and BOUNTYLINE_<SECTION>__<KEY> (for example \
        BOUNTYLINE_HTTP__PORT=8080, BOUNTYLINE_AUTH__JWT_SECRET=...)."
)]
pub struct Cli {
    /// A TOML configuration file; environment variables override it.
    #[arg(long, env = "BOUNTYLINE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (commands, queries, SSE streams).
    Serve,
    /// Run the relay, the projection workers and the schedulers.
    Work,
    /// Apply migrations, then run the API and the workers in one process (the default).
    Dev,
    /// Apply database migrations and exit.
    Migrate,
    /// Rebuild a projection from the event store beside the live one, then swap it in.
    Replay {
        /// The projection to rebuild (see --list).
        projection: Option<String>,
        /// Rebuild every projection.
        #[arg(long, conflicts_with = "projection")]
        all: bool,
        /// List the projections and exit.
        #[arg(long)]
        list: bool,
    },
    /// Audit the event history: export it, verify its hash chains, keep their heads.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the OpenAPI document (the bytes served at `/openapi.json`) and exit; the typed
    /// client in clients/typescript is generated from it.
    Openapi,
    /// Administer users.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// People's texts (docs/PRIVACY.md).
    Privacy {
        #[command(subcommand)]
        command: PrivacyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Seal every text written before texts were sealed, in place, in a new chain epoch: the
    /// streams holding them get new hashes (old and new recorded, and a `ChainResealed`
    /// event), their JetStream messages are deleted and every projection is rebuilt. Appends
    /// wait while the store is rewritten. Prints what it did as JSON.
    Reseal,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write every matching event to standard output (NDJSON or CSV), with a progress bar on
    /// standard error. The export itself is recorded as an audit read.
    Export {
        #[command(flatten)]
        filter: crate::audit::export::AuditFilter,
        #[arg(long, value_enum, default_value_t)]
        format: crate::audit::export::Format,
    },
    /// Recompute every stream's hash chain and print {ok, checked, first_broken}; with
    /// --heads, also check heads exported earlier (catches removed newest events). Exits 1
    /// when anything is broken.
    Verify {
        /// A file written by `bountyline audit heads`.
        #[arg(long)]
        heads: Option<PathBuf>,
    },
    /// Print the latest hash of every stream as JSON; keep it where the database cannot
    /// change it, and check it later with `verify --heads`.
    Heads,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin user, or make an existing user an admin. The password is read from
    /// BOUNTYLINE_ADMIN_PASSWORD or, if unset, from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        display_name: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The document needs no configuration: it prints on a machine with no database set up.
    if let Some(Command::Openapi) = cli.command {
        return print_openapi();
    }
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init_tracing(&settings.log_format);
    match cli.command.unwrap_or(Command::Dev) {
        Command::Serve => serve(settings, Parts::API).await,
        Command::Work => serve(settings, Parts::WORKERS).await,
        Command::Dev => {
            db::migrate(&db::connect(&settings).await?).await?;
            serve(settings, Parts::ALL).await
        }
        Command::Migrate => {
            db::migrate(&db::connect(&settings).await?).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Replay {
            projection,
            all,
            list,
        } => replay(settings, projection, all, list).await,
        Command::Audit { command } => audit(settings, command).await,
        Command::Openapi => unreachable!("answered before the configuration is read"),
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    display_name,
                },
        } => create_admin(settings, &email, &display_name).await,
        Command::Privacy {
            command: PrivacyCommand::Reseal,
        } => reseal(settings).await,
    }
}

fn print_openapi() -> anyhow::Result<()> {
    use std::io::Write;
    let document = crate::http::openapi::Document::build()?;
    let mut out = std::io::stdout().lock();
    out.write_all(&document.bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

async fn serve(settings: Settings, parts: Parts) -> anyhow::Result<()> {
    let host = settings.http.host.clone();
    let app = Application::build(settings, parts).await?;
    if let Some(port) = app.port() {
        tracing::info!("API listening on http://{host}:{port}");
    }
    if parts.workers {
        tracing::info!("workers running: relay, projections, lease expiry");
    }
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        shutdown.trigger().await;
    });
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn replay(
    settings: Settings,
    projection: Option<String>,
    all: bool,
    list: bool,
) -> anyhow::Result<()> {
    let pool = db::connect(&settings).await?;
    // A rebuilt search vector indexes the words of the texts it opens, as the live one does.
    let opener = Opener::new(Keyring::new(pool.clone(), &settings)?);
    let available = workers::projections(&opener);
    if list {
        for p in &available {
            println!("{}", p.name());
        }
        return Ok(());
    }
    let chosen: Vec<_> = match (projection, all) {
        (_, true) => available,
        (Some(name), false) => vec![workers::projection(&name, &opener).ok_or_else(|| {
            anyhow::anyhow!("no projection named {name}; try `bountyline replay --list`")
        })?],
        (None, false) => anyhow::bail!("name a projection or pass --all"),
    };
    rebuild(&pool, &chosen).await
}

/// Rebuilds `chosen` into shadow schemas from one read of the store, side by side (one waits
/// on Postgres while another decodes), each swapped in on its own; reports on standard error.
async fn rebuild(
    pool: &sqlx::PgPool,
    chosen: &[std::sync::Arc<dyn Projection>],
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("[{bar:40}] position {pos}/{len}  {per_sec}  eta {eta}")?
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let projections: Vec<&dyn Projection> = chosen.iter().map(|p| p.as_ref()).collect();
    let reports = bountyline_projections::rebuild::rebuild_all(pool, &projections, &|at, head| {
        bar.set_length(head.max(0) as u64);
        bar.set_position(at.max(0) as u64);
    })
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    for (projection, report) in projections.iter().zip(reports) {
        eprintln!(
            "{}: rebuilt from {} events up to position {} in {:.2} s ({:.0} events/s), \
             swapped in; {:.2} s applying, {:.2} s building indexes after the load",
            projection.name(),
            report.events,
            report.position,
            secs,
            report.events as f64 / secs.max(1e-9),
            report.applying.as_secs_f64(),
            report.indexing.as_secs_f64(),
        );
    }
    Ok(())
}

/// `privacy reseal`: the store rewritten in one transaction, then JetStream's copies deleted
/// and the read models rebuilt (both hold the plain texts the store no longer does).
async fn reseal(settings: Settings) -> anyhow::Result<()> {
    let pool = db::connect(&settings).await?;
    let opener = Opener::new(Keyring::new(pool.clone(), &settings)?);
    let report =
        crate::privacy::reseal::reseal(&pool, opener.keyring(), chrono::Utc::now()).await?;
    let mut deleted = 0;
    if report.epoch.is_some() {
        let js = async_nats::jetstream::new(crate::nats::connect(&settings.nats_url).await?);
        let names = crate::nats::Names::new(&settings.nats_prefix);
        deleted = crate::privacy::reseal::scrub_stream(&js, &names, &report.positions).await?;
        rebuild(&pool, &workers::projections(&opener)).await?;
        // Only now: until the rebuilt read models were swapped in, the live ones held plain
        // copies that the opener hides by these records.
        crate::privacy::reseal::forget_erased_texts(&pool, &report.positions).await?;
    }
    let mut answer = serde_json::to_value(&report)?;
    answer["jetstream_deleted"] = deleted.into();
    println!("{answer}");
    Ok(())
}

async fn audit(settings: Settings, command: AuditCommand) -> anyhow::Result<()> {
    use crate::audit::{chain, export};
    let pool = db::connect(&settings).await?;
    match command {
        AuditCommand::Export { filter, format } => {
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            let operator = bountyline_domain::Actor::SYSTEM_ID;
            let opener = Opener::new(Keyring::new(pool.clone(), &settings)?);
            let rows = export::export_with_progress(&pool, &opener, operator, &filter, format, out)
                .await?;
            eprintln!("exported {rows} events");
            Ok(())
        }
        AuditCommand::Verify { heads } => {
            let report = chain::verify(&pool).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            let mut ok = report.ok;
            if let Some(path) = heads {
                let text = std::fs::read_to_string(&path)?;
                let value: serde_json::Value = serde_json::from_str(&text)?;
                let items = value.get("items").cloned().unwrap_or(value);
                let exported: Vec<chain::Head> = serde_json::from_value(items)?;
                let checked = chain::check_heads(&pool, &exported).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "heads_checked": exported.len(),
                        "problems": checked.problems,
                        "resealed": checked.resealed,
                    }))?
                );
                ok &= checked.problems.is_empty();
            }
            if ok {
                Ok(())
            } else {
                anyhow::bail!("the history does not verify")
            }
        }
        AuditCommand::Heads => {
            let heads = chain::heads(&pool).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "items": heads }))?
            );
            Ok(())
        }
    }
}

async fn create_admin(settings: Settings, email: &str, display_name: &str) -> anyhow::Result<()> {
    let password = match std::env::var("BOUNTYLINE_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {email}: ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let pool = db::connect(&settings).await?;
    let outcome = crate::auth::users::create_admin(&pool, email, &password, display_name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("{outcome:?}");
    Ok(())
}
