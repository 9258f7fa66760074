//! The flushed horizon: what may leave the database.
//!
//! The committer commits its groups asynchronously, so that the append lock is released as soon
//! as a group's commit record is in the WAL's buffers, not after the WAL reaches the disk, and
//! answers them only once the WAL is flushed past them (docs/adr/0005). Between the two, a group
//! is visible to every reader and not yet durable: a crash of Postgres would take it away, and
//! the positions it held would be drawn again by other events.
//!
//! Inside the database that is harmless: a reader that writes what it saw commits
//! synchronously, and the WAL is one sequence, so its commit is flushed only after everything it
//! read. A reader that hands events outside (the relay to JetStream, the SSE hub to browsers, an
//! HTTP answer) first calls [`settle`]: it returns once everything that was visible before the
//! call is flushed.

use sqlx::PgExecutor;

/// Flushes the WAL as far as it reaches now, unless it is already flushed that far. A
/// transactional logical message is a WAL record of its own transaction, committed
/// synchronously (`synchronous_commit` set on for that transaction alone, whatever the
/// connection's or the server's setting): the statement returns once the WAL is flushed past
/// it, hence past every commit that was visible before it. Run it outside any transaction (on a
/// pool, or a connection with none open): inside one, the flush would wait for its commit.
const SETTLE: &str = "SELECT CASE WHEN pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() \
     THEN NULL ELSE (SELECT pg_logical_emit_message(true, 'bountyline', 'settle') \
                       FROM set_config('synchronous_commit', 'on', true)) END";

/// Returns once every commit visible before the call is durable.
pub async fn settle<'e>(executor: impl PgExecutor<'e>) -> Result<(), sqlx::Error> {
    sqlx::query(SETTLE).execute(executor).await?;
    Ok(())
}
