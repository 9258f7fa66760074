//! One read of the store shared by several appliers, each at its own pace: a page is read
//! once and handed to every applier through a short queue of its own. An applier that is
//! quicker on some pages runs ahead on them instead of waiting at every page for the slowest
//! (a catch-up or a rebuild takes as long as its slowest applier's total, not as the sum of
//! every page's slowest); the queues bound how far ahead the read runs, hence the memory.

use futures::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::event::{Page, Pages};

/// Pages an applier may have waiting: with the one it applies and the one being read, at
/// most this many plus two pages are held at once.
const QUEUED: usize = 2;

/// Reads `pages` for `appliers` appliers: returns the read, to be run beside them, and each
/// applier's queue. The read calls `read(through)` once a page is handed to every applier
/// still reading, and ends when the range does. An applier that stops early (done, or
/// failed) drops its queue; the read goes on for the others.
pub(crate) fn fan_out(
    mut pages: Pages,
    appliers: usize,
    read: impl Fn(i64),
) -> (
    impl Future<Output = Result<(), sqlx::Error>>,
    Vec<mpsc::Receiver<Arc<Page>>>,
) {
    let (senders, queues): (Vec<_>, Vec<_>) = (0..appliers).map(|_| mpsc::channel(QUEUED)).unzip();
    let reading = async move {
        let mut senders = senders;
        while let Some(page) = pages.next().await? {
            let through = page.through;
            let page = Arc::new(page);
            let mut open = Vec::with_capacity(senders.len());
            for sender in senders {
                if sender.send(Arc::clone(&page)).await.is_ok() {
                    open.push(sender);
                }
            }
            senders = open;
            read(through);
            if senders.is_empty() {
                break;
            }
        }
        Ok(())
    };
    (reading, queues)
}
