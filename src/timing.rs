//! Where a request's time went, for its `Server-Timing` header: the event store (a command's
//! aggregate loads and its append, the flush included) and the wait for a read model to reach
//! the request's `X-Min-Position`. The HTTP edge opens a [`Timings`] around each request
//! ([`measured`]); the store and the read-your-writes wait add to it from inside the request's
//! own task. Outside a request (workers, process managers) nothing is recorded.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one request spent, so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub store: Duration,
    pub read_model: Duration,
}

tokio::task_local! {
    static TIMINGS: Cell<Timings>;
}

/// Runs a request's handling and returns what it spent in the store and waiting for read
/// models beside its output.
pub async fn measured<F: Future>(handling: F) -> (F::Output, Timings) {
    TIMINGS
        .scope(Cell::new(Timings::default()), async {
            let output = handling.await;
            (output, TIMINGS.with(Cell::get))
        })
        .await
}

/// Adds what work done in another task for this request spent (a command runs in a task of its
/// own).
pub fn add(spent: Timings) {
    let _ = TIMINGS.try_with(|cell| {
        let mut timings = cell.get();
        timings.store += spent.store;
        timings.read_model += spent.read_model;
        cell.set(timings);
    });
}

/// Runs `work` and counts its time as the event store's.
pub async fn in_store<F: Future>(work: F) -> F::Output {
    timed(work, |t, d| t.store += d).await
}

/// Runs `work` and counts its time as waiting for a read model.
pub async fn waiting_for_read_model<F: Future>(work: F) -> F::Output {
    timed(work, |t, d| t.read_model += d).await
}

async fn timed<F: Future>(work: F, add: fn(&mut Timings, Duration)) -> F::Output {
    let started = Instant::now();
    let output = work.await;
    let _ = TIMINGS.try_with(|cell| {
        let mut timings = cell.get();
        add(&mut timings, started.elapsed());
        cell.set(timings);
    });
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn time_is_counted_inside_a_request_and_ignored_outside() {
        let nap = || tokio::time::sleep(Duration::from_millis(20));
        in_store(nap()).await;
        let ((), timings) = measured(async {
            in_store(nap()).await;
            waiting_for_read_model(nap()).await;
            in_store(nap()).await;
        })
        .await;
        assert!(timings.store >= Duration::from_millis(40), "{timings:?}");
        assert!(
            timings.read_model >= Duration::from_millis(20),
            "{timings:?}"
        );
        assert!(
            timings.read_model < Duration::from_millis(40),
            "{timings:?}"
        );
    }
}
