//! Aurora topology (spec §9): a monitor per cluster reads `aurora_replica_status()` on one
//! IAM connection to the writer, and sessions of the cluster's writer and reader endpoints go
//! straight to instance endpoints: the writer, or the least-loaded reader within the lag
//! bound. When the topology cannot be read the target dials its endpoint as given.
//!
//! `cluster.rs` holds what the monitor found and what sessions ask of it, `select.rs` the
//! choice of an instance, `monitor.rs` the task, `read.rs` its query, `set.rs` the monitors
//! of the running targets.

mod cluster;
mod monitor;
mod read;
mod select;
mod set;
mod state;

pub(crate) use read::describe;
pub(crate) use set::{Follow, TopologySet};
pub(crate) use state::{InstanceSession, Pick};
