//! Exponential backoff for loops that retry a failing dependency, interruptible by shutdown.

use std::time::Duration;
use tokio::sync::watch;

/// Exponential backoff between retries of a failing loop, capped, interruptible by shutdown.
pub struct Backoff {
    current: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Self {
            current: Self::START,
        }
    }

    pub fn reset(&mut self) {
        self.current = Self::START;
    }

    pub async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.current) => {}
            _ = shutdown.changed() => {}
        }
        self.current = (self.current * 2).min(Self::MAX);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}
