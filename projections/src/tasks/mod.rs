//! The `tasks` projection: one row per task, the source of task lists, queue stats, the claim
//! order and the lease-expiry scan.

mod apply;
mod batch;
pub mod query;

pub use apply::TasksProjection;
pub use query::{QueueStats, TaskFilter, TaskView};
