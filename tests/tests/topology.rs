//! Aurora topology (spec §9) against the stand-in cluster: a writer and two hot standbys,
//! each with its own instance endpoint, the cluster and reader endpoints behind stale-DNS
//! forwarders. The proxy follows the writer through a failover and balances readers.

#[path = "operations/admin_client.rs"]
#[allow(dead_code)]
mod admin_client;
#[path = "aws_stub/mod.rs"]
mod aws_stub;
mod common;
#[path = "topology/harness.rs"]
mod harness;

#[path = "topology/failover.rs"]
mod failover;
#[path = "topology/fallback.rs"]
mod fallback;
#[path = "topology/monitor.rs"]
mod monitor;
#[path = "topology/routing.rs"]
mod routing;
