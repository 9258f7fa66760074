//! `loadgen`: the load generator behind `bench/run`. One subcommand per phase; each prints
//! one JSON object with its results on stdout. Every loop is bounded in count and in time,
//! and every target is the URL it is given (bench/run only ever gives it loopback).

mod catchup;
mod client;
mod commands;
mod hold;
mod mix;
mod ops;
mod queries;
mod screen;
mod stats;
mod users;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Load generator for bountyline's bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register and log in users; write them to a file.
    Users(users::Args),
    /// Closed-loop command throughput (tasks, deposits, bounties).
    Commands(commands::Args),
    /// Open-loop command-to-screen latency over the tasks SSE stream.
    Screen(screen::Args),
    /// Closed-loop query throughput against one endpoint.
    Queries(queries::Args),
    /// Open-loop commands held at a rate, with SSE clients attached, reported per window.
    Hold(hold::Args),
    /// Wait until every checkpoint reaches the head; report the rates.
    Catchup(catchup::Args),
    /// Wait until /health/ready answers 200.
    WaitReady(ops::ReadyArgs),
    /// Save a /metrics snapshot.
    Scrape(ops::ScrapeArgs),
    /// Delete a run's JetStream stream.
    DropStream(ops::DropStreamArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = match Cli::parse().command {
        Command::Users(a) => users::run(a).await?,
        Command::Commands(a) => commands::run(a).await?,
        Command::Screen(a) => screen::run(a).await?,
        Command::Queries(a) => queries::run(a).await?,
        Command::Hold(a) => hold::run(a).await?,
        Command::Catchup(a) => catchup::run(a).await?,
        Command::WaitReady(a) => ops::wait_ready(a).await?,
        Command::Scrape(a) => ops::scrape(a).await?,
        Command::DropStream(a) => ops::drop_stream(a).await?,
    };
    println!("{result}");
    Ok(())
}
