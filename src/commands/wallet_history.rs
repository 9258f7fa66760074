//! The wallet's keyed history, read from the event store: the events one wallet recorded
//! under one entry key, with the index of migrations/0014.

use bountyline_domain::upcast::upcast;
use bountyline_domain::wallet::{EntryKey, HistoryError, WalletEvent, WalletHistory};
use serde::Deserialize;
use sqlx::PgPool;
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

pub struct StoreWalletHistory {
    pool: PgPool,
}

impl StoreWalletHistory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn read(&self, wallet: Uuid, key: &EntryKey) -> Result<Vec<WalletEvent>, HistoryError> {
        // Sorted here, not by the query: with ORDER BY sequence the planner walked the primary
        // key through all of the wallet's events, computing each one's key (1.8 ms a command
        // in a held load, growing with the wallet), instead of the few under this key.
        let mut rows: Vec<(i64, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT sequence, event_type, event_version, payload FROM events \
             WHERE aggregate_type = 'Wallet' AND aggregate_id = $1 \
             AND wallet_entry_key(event_type, payload) = $2",
        )
        .bind(wallet.to_string())
        .bind(key.stored())
        .fetch_all(&self.pool)
        .await
        .map_err(HistoryError::new)?;
        rows.sort_unstable_by_key(|(sequence, ..)| *sequence);
        rows.into_iter()
            .map(|(_, event_type, version, payload)| {
                // In the current form of its type, whatever version it was stored at.
                let payload = upcast(&event_type, &version, &payload).map_err(HistoryError::new)?;
                WalletEvent::deserialize(payload.as_ref()).map_err(HistoryError::new)
            })
            .collect()
    }
}

impl WalletHistory for StoreWalletHistory {
    fn events_under<'a>(
        &'a self,
        wallet: Uuid,
        key: &'a EntryKey,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WalletEvent>, HistoryError>> + Send + 'a>> {
        Box::pin(self.read(wallet, key))
    }
}
