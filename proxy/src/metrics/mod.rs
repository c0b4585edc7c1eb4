//! Prometheus metrics, registered in one registry owned by the process (no global recorder):
//! the admin endpoint encodes it, connection tasks get a handle through `connection::Shared`.
//! Token and credential figures are read from the signers at scrape time (see `signers`).

mod signers;
mod topology;

pub(crate) use signers::SignerWatch;
pub(crate) use topology::{ClusterHealth, HealthEntry, TopologyMetrics};

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TargetLabel {
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub target: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabel {
    pub target: String,
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoleLabel {
    pub target: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub target: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub connections_active: Family<TargetLabel, Gauge>,
    pub connections_total: Family<ResultLabel, Counter>,
    pub upstream_connect_seconds: Histogram,
    pub bytes_total: Family<DirectionLabel, Counter>,
    pub auth_failures_total: Family<TargetLabel, Counter>,
    pub server_connections_opened_total: Family<TargetLabel, Counter>,
    pub pool_reuses_total: Family<TargetLabel, Counter>,
    pub pool_idle: Family<TargetLabel, Gauge>,
    pub pool_discards_total: Family<ReasonLabel, Counter>,
    pub cancel_requests_total: Family<ResultLabel, Counter>,
    /// Aurora topology figures, and the clusters readiness checks.
    pub topology: TopologyMetrics,
    /// Targets and their signers, read by the scrape-time collector and by readiness.
    pub signers: SignerWatch,
    pub registry: Arc<Registry>,
}

/// One connection's byte counters, added to as bytes flow so long sessions show up live.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByteCounters {
    pub client_to_server: Counter,
    pub server_to_client: Counter,
}

/// A pool's gauge of idle connections and its discard counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolMeters {
    target: String,
    pub idle: Gauge,
    discards: Family<ReasonLabel, Counter>,
}

impl PoolMeters {
    /// Counts a server connection closed instead of kept.
    pub fn discarded(&self, reason: &str) {
        self.discards
            .get_or_create(&ReasonLabel {
                target: self.target.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// One open connection in `connections_active`.
pub(crate) struct ActiveConnection(Gauge);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rds_iam_proxy");
        let connections_active = Family::<TargetLabel, Gauge>::default();
        let connections_total = Family::<ResultLabel, Counter>::default();
        // 1 ms .. ~16 s: loopback TLS sits at the bottom, cross-AZ IAM auth in the middle.
        let upstream_connect_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let bytes_total = Family::<DirectionLabel, Counter>::default();
        let auth_failures_total = Family::<TargetLabel, Counter>::default();
        registry.register(
            "connections_active",
            "Client connections currently open",
            connections_active.clone(),
        );
        registry.register(
            "connections",
            "Client connections by outcome",
            connections_total.clone(),
        );
        registry.register(
            "upstream_connect_seconds",
            "Time to connect, TLS-handshake and IAM-authenticate to the database",
            upstream_connect_seconds.clone(),
        );
        registry.register(
            "bytes",
            "Bytes relayed, by direction (client_to_server, server_to_client)",
            bytes_total.clone(),
        );
        registry.register(
            "auth_failures",
            "IAM authentications the database rejected after the retry",
            auth_failures_total.clone(),
        );
        let server_connections_opened_total = Family::<TargetLabel, Counter>::default();
        let pool_reuses_total = Family::<TargetLabel, Counter>::default();
        let pool_idle = Family::<TargetLabel, Gauge>::default();
        let pool_discards_total = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "server_connections_opened",
            "New (IAM-authenticated) server connections",
            server_connections_opened_total.clone(),
        );
        registry.register(
            "pool_reuses",
            "Client sessions given a pooled server connection",
            pool_reuses_total.clone(),
        );
        registry.register(
            "pool_idle",
            "Idle server connections kept in the pool",
            pool_idle.clone(),
        );
        registry.register(
            "pool_discards",
            "Server connections closed instead of kept, by reason",
            pool_discards_total.clone(),
        );
        let cancel_requests_total = Family::<ResultLabel, Counter>::default();
        registry.register(
            "cancel_requests",
            "CancelRequests by result (forwarded, unknown, failed)",
            cancel_requests_total.clone(),
        );
        let topology = TopologyMetrics::default();
        topology.register(&mut registry);
        let signers = SignerWatch::default();
        registry.register_collector(Box::new(signers.clone()));
        Metrics {
            connections_active,
            connections_total,
            upstream_connect_seconds,
            bytes_total,
            auth_failures_total,
            server_connections_opened_total,
            pool_reuses_total,
            pool_idle,
            pool_discards_total,
            cancel_requests_total,
            topology,
            signers,
            registry: Arc::new(registry),
        }
    }

    /// Counts a connection open until the returned guard drops.
    pub fn connection_opened(&self, target: &str) -> ActiveConnection {
        let gauge = self.connections_active.get_or_create_owned(&TargetLabel {
            target: target.to_owned(),
        });
        gauge.inc();
        ActiveConnection(gauge)
    }

    /// Counts a closed connection by its outcome label; one the database refused to
    /// authenticate also counts in `auth_failures_total`.
    pub fn connection_closed(&self, target: &str, outcome: &str, auth_failed: bool) {
        self.connections_total
            .get_or_create(&ResultLabel {
                target: target.to_owned(),
                result: outcome.to_owned(),
            })
            .inc();
        if auth_failed {
            self.auth_failures_total
                .get_or_create(&TargetLabel {
                    target: target.to_owned(),
                })
                .inc();
        }
    }

    /// Counts a CancelRequest by what became of it.
    pub fn cancel_request(&self, target: &str, result: &str) {
        self.cancel_requests_total
            .get_or_create(&ResultLabel {
                target: target.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a server session handed to a client: a reused one, or a new connection.
    pub fn server_session(&self, target: &str, reused: bool) {
        let family = if reused {
            &self.pool_reuses_total
        } else {
            &self.server_connections_opened_total
        };
        family
            .get_or_create(&TargetLabel {
                target: target.to_owned(),
            })
            .inc();
    }

    /// The figures a target's pool keeps up to date.
    pub fn pool_meters(&self, target: &str) -> PoolMeters {
        PoolMeters {
            target: target.to_owned(),
            idle: self.pool_idle.get_or_create_owned(&TargetLabel {
                target: target.to_owned(),
            }),
            discards: self.pool_discards_total.clone(),
        }
    }

    /// The `bytes_total` counters of `target`, one per direction.
    pub fn byte_counters(&self, target: &str) -> ByteCounters {
        let counter = |direction: &str| {
            self.bytes_total.get_or_create_owned(&DirectionLabel {
                target: target.to_owned(),
                direction: direction.to_owned(),
            })
        };
        ByteCounters {
            client_to_server: counter("client_to_server"),
            server_to_client: counter("server_to_client"),
        }
    }

    /// The registry in Prometheus text (OpenMetrics) format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a metric that fails to encode is a bug.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
