//! What a target is at run time: its endpoint, the TLS trust its certificate is checked
//! against, its signer and signing region, and its new-connection budget. Built once per target
//! at start-up (and again on reload when its settings change) and shared by every connection.

mod build;
mod ca_bundle;
mod rate;
mod region;
mod signers;
mod tls;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::PoolMode;
use rds_iam_signer::{Signer, TokenRequest};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

pub(crate) use build::{TargetBuilder, TargetError};
pub(crate) use ca_bundle::{auto_paths, GLOBAL_BUNDLE_URL};
pub(crate) use rate::{RateLimited, RateLimiter};
pub(crate) use region::{resolve_region, RegionSource};
pub(crate) use signers::{group_by_signer, SignerPool};
pub(crate) use tls::crypto_provider;

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
    /// The address actually dialled (`connect_to`, else host:port).
    pub dial: (String, u16),
    pub tls: Arc<ServerTrust>,
    pub signer: Signer,
    pub rate: RateLimiter,
    pub connect_timeout: Duration,
    /// Whether its server connections are pooled.
    pub pool_mode: PoolMode,
}

impl TargetContext {
    pub fn token_request(&self, user: &str) -> TokenRequest {
        TokenRequest {
            host: self.host.clone(),
            port: self.port,
            user: user.to_owned(),
            region: self.region.clone(),
        }
    }
}

/// How a target's server is verified: the CA bundle as a rustls config, and the name its
/// certificate must carry (always the endpoint, even when `connect_to` dials a tunnel).
#[derive(Debug)]
pub(crate) struct ServerTrust {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub host: String,
    /// The CA bundle's bytes as read, so a reload can tell a rotated file from the same one.
    pub ca_pem: Vec<u8>,
}
