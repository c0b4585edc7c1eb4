//! Prometheus metrics, registered in one registry owned by the process (no global recorder):
//! the admin endpoint encodes it, connection tasks get a handle through `connection::Shared`.
//! Token and credential figures are read from the signers at scrape time (see `signers`).

mod signers;

pub(crate) use signers::SignerWatch;

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

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub connections_active: Family<TargetLabel, Gauge>,
    pub connections_total: Family<ResultLabel, Counter>,
    pub upstream_connect_seconds: Histogram,
    pub bytes_total: Family<DirectionLabel, Counter>,
    pub auth_failures_total: Family<TargetLabel, Counter>,
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
        let signers = SignerWatch::default();
        registry.register_collector(Box::new(signers.clone()));
        Metrics {
            connections_active,
            connections_total,
            upstream_connect_seconds,
            bytes_total,
            auth_failures_total,
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
