//! The wallet's keyed history, read from the event store: the events one wallet recorded
//! under one entry key, with the index of migrations/0014.

use bountyline_domain::wallet::{EntryKey, HistoryError, WalletEvent, WalletHistory};
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
        let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT payload FROM events WHERE aggregate_type = 'Wallet' AND aggregate_id = $1 \
             AND wallet_entry_key(event_type, payload) = $2 ORDER BY sequence",
        )
        .bind(wallet.to_string())
        .bind(key.stored())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| format!("reading wallet {wallet}'s {}: {e}", key.stored()))?;
        payloads
            .into_iter()
            .map(|payload| {
                serde_json::from_value(payload)
                    .map_err(|e| format!("decoding wallet {wallet}'s {}: {e}", key.stored()))
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
