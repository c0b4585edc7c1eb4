//! What a target is at run time: its endpoint, the TLS trust its certificate is checked
//! against, its signer and signing region, and its new-connection budget. Built once per target
//! at start-up (and again on reload when its settings change) and shared by every connection.

mod aurora;
mod build;
mod ca_bundle;
mod rate;
mod region;
mod signers;
mod tls;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::{PoolMode, Resolve};
use rds_iam_signer::{Signer, TokenRequest};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

pub(crate) use aurora::{ClusterEndpoint, Role};
pub(crate) use build::{TargetBuilder, TargetError};
pub(crate) use ca_bundle::{auto_paths, GLOBAL_BUNDLE_URL};
pub(crate) use rate::{RateLimited, RateLimiter};
pub(crate) use region::{resolve_region, RegionSource};
pub(crate) use signers::{group_by_signer, SignerPool};
pub(crate) use tls::crypto_provider;
#[cfg(test)]
pub(crate) use tls::test_trust;

/// One database endpoint and how to reach it.
#[derive(Debug)]
pub(crate) struct TargetContext {
    pub name: String,
    /// The endpoint the token is signed for and the certificate must name.
    pub host: String,
    pub port: u16,
    pub region: String,
    /// Database used when the client names none.
    pub database: Option<String>,
    /// User forced upstream whatever the client sends.
    pub forced_user: Option<String>,
    pub signer: Signer,
    pub rate: RateLimiter,
    pub connect_timeout: Duration,
    /// Whether its server connections are pooled.
    pub pool_mode: PoolMode,
    /// The endpoint itself, with the address dialled for it (`connect_to`, `resolve`, else
    /// host:port) and its TLS trust: what a session dials when no topology picks an instance.
    pub endpoint: Arc<Endpoint>,
    /// The Aurora cluster it follows (`topology`), when it does.
    pub cluster: Option<ClusterEndpoint>,
    /// `resolve`, for instance endpoints.
    pub resolve: Vec<Resolve>,
}

impl TargetContext {
    pub fn token_request(&self, user: &str) -> TokenRequest {
        self.token_request_for(&self.endpoint, user)
    }

    /// The token for `user` at `endpoint` (an instance endpoint gets its own).
    pub fn token_request_for(&self, endpoint: &Endpoint, user: &str) -> TokenRequest {
        TokenRequest {
            host: endpoint.host.clone(),
            port: endpoint.port,
            user: user.to_owned(),
            region: self.region.clone(),
        }
    }

    /// Whether tokens for `host:port` are this target's: its endpoint's, or, when it follows
    /// a cluster, those of the cluster's instance endpoints.
    pub fn signs_for(&self, host: &str, port: u16) -> bool {
        port == self.port
            && (host == self.host
                || self
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.names_instance(host)))
    }

    /// The endpoint of the cluster's instance `server_id`: its own name for the token and
    /// the certificate, dialled where `resolve` says.
    pub fn instance_endpoint(&self, cluster: &ClusterEndpoint, server_id: &str) -> Endpoint {
        let host = cluster.instance_host(server_id);
        let dial = Resolve::lookup(&self.resolve, &host, self.port)
            .unwrap_or_else(|| (host.clone(), self.port));
        Endpoint {
            trust: Arc::new(self.endpoint.trust.for_host(&host)),
            host,
            port: self.port,
            dial,
            instance: Some(server_id.into()),
        }
    }
}

/// One server a session can be opened to.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The name the token is signed for and the certificate must carry.
    pub host: String,
    pub port: u16,
    /// The address dialled (`connect_to`, `resolve`, else host:port).
    pub dial: (String, u16),
    pub trust: Arc<ServerTrust>,
    /// The Aurora instance (`server_id`), when the topology picked it.
    pub instance: Option<Arc<str>>,
}

/// How a target's server is verified: the CA bundle as a rustls config, and the name its
/// certificate must carry (always the endpoint, even when `connect_to` dials a tunnel).
#[derive(Debug)]
pub(crate) struct ServerTrust {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub host: String,
    /// The CA bundle's bytes as read, so a reload can tell a rotated file from the same one.
    pub ca_pem: Arc<[u8]>,
}

impl ServerTrust {
    /// The same CA bundle, verifying another name (an instance endpoint). Instance names
    /// are built from a valid cluster endpoint and `aurora_replica_status()`'s server ids;
    /// one that is not a valid DNS name keeps failing the TLS stage rather than panicking.
    pub fn for_host(&self, host: &str) -> ServerTrust {
        let server_name = ServerName::try_from(host.to_owned())
            .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("a valid name"));
        ServerTrust {
            config: self.config.clone(),
            server_name,
            host: host.to_owned(),
            ca_pem: self.ca_pem.clone(),
        }
    }
}
