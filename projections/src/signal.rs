//! Wake-ups on core NATS: "the store has events up to here" (from every process that appends)
//! and "this projection has applied up to here" (from every runner). They replace Postgres
//! LISTEN/NOTIFY, whose commit takes one lock for the whole cluster and holds it through the
//! commit's fsync: every append and every projection batch committed one after another,
//! their fsyncs never shared.
//!
//! A signal only shortens a wait. Every listener also polls the store now and then, so a lost
//! signal (NATS down, a slow subscriber) costs latency, never a wrong answer; and the sender
//! never waits on NATS: the latest position goes into a watch channel, which a task of its own
//! publishes, so that positions arriving while NATS is slow collapse into one message.

use async_nats::Client;
use tokio::sync::watch;

/// The sending half: positions only ever move forward.
#[derive(Clone)]
pub struct Signal {
    latest: watch::Sender<i64>,
}

impl Default for Signal {
    fn default() -> Self {
        Self {
            latest: watch::channel(0).0,
        }
    }
}

impl Signal {
    /// Records `position`; it is published unless a later one is by then.
    pub fn raise(&self, position: i64) {
        self.latest.send_if_modified(|latest| {
            let later = position > *latest;
            if later {
                *latest = position;
            }
            later
        });
    }

    /// Publishes every position raised from now on to `subject` (the position in decimal as
    /// the payload) until `shutdown`.
    pub async fn publish(
        self,
        client: Client,
        subject: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut raised = self.latest.subscribe();
        raised.mark_unchanged();
        loop {
            tokio::select! {
                changed = raised.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
            let position = *raised.borrow_and_update();
            if let Err(e) = client
                .publish(subject.clone(), position.to_string().into())
                .await
            {
                tracing::debug!(%subject, error = %e, "signal not published");
            }
        }
    }
}

/// The position a signal carries, if its payload is one.
pub fn position_of(payload: &[u8]) -> Option<i64> {
    std::str::from_utf8(payload).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_only_moves_forward() {
        let signal = Signal::default();
        let mut seen = signal.latest.subscribe();
        signal.raise(5);
        signal.raise(3);
        assert_eq!(*seen.borrow_and_update(), 5);
        signal.raise(5);
        assert!(!seen.has_changed().unwrap());
    }

    #[test]
    fn a_payload_is_a_decimal_position() {
        assert_eq!(position_of(b"42"), Some(42));
        assert_eq!(position_of(b"x"), None);
        assert_eq!(position_of(&[0xff]), None);
    }
}
