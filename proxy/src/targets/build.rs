//! Settings → a [`TargetContext`]: CA bundle, server name, signer, region, rate limiter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rds_iam_config::{CaFile, Resolve, Settings, Target, Topology};
use rds_iam_signer::SignerError;

use super::ca_bundle::{self, AutoCaError};
use super::tls::{server_trust, TlsConfigError};
use super::{resolve_region, ClusterEndpoint, Endpoint, RateLimiter, SignerPool, TargetContext};

/// Why a target could not be built. All but `Signer` are settings problems (exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("target {target}: {source}")]
    Tls {
        target: String,
        source: TlsConfigError,
    },
    #[error("target {target}: ca_file = auto: {source}; fetch the bundle with: mkdir -p ~/.cache/rds-iam-proxy && curl -fsSo ~/.cache/rds-iam-proxy/global-bundle.pem {url}", url = ca_bundle::GLOBAL_BUNDLE_URL)]
    NoCaBundle { target: String, source: AutoCaError },
    #[error("target {target}: cannot tell the signing region of {host}: set region (--region or ?region=) or AWS_REGION")]
    NoRegion { target: String, host: String },
    #[error("target {target}: topology = aurora, but {host} is not an Aurora cluster or reader endpoint (NAME.cluster-ID.REGION.rds.amazonaws.com or NAME.cluster-ro-...): set topology = off, or name the cluster endpoint")]
    NotAurora { target: String, host: String },
    #[error("AWS configuration: {0}")]
    Signer(#[from] SignerError),
}

impl TargetError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Tls { .. }
            | Self::NoCaBundle { .. }
            | Self::NoRegion { .. }
            | Self::NotAurora { .. } => 2,
            Self::Signer(_) => 1,
        }
    }
}

/// Builds targets for start-up, reload and `check`, sharing one signer pool.
#[derive(Clone)]
pub(crate) struct TargetBuilder {
    signers: SignerPool,
    /// `$HOME`, for `ca_file = auto`'s per-user cache.
    home: Option<PathBuf>,
}

impl TargetBuilder {
    pub fn new(home: Option<PathBuf>) -> Self {
        TargetBuilder {
            signers: SignerPool::default(),
            home,
        }
    }

    pub fn signers(&self) -> &SignerPool {
        &self.signers
    }

    /// The CA bundle `target` uses, found (or downloaded, for `auto`) now.
    pub async fn ca_file(&self, target: &Target) -> Result<PathBuf, TargetError> {
        match &target.ca_file {
            CaFile::Path(p) => Ok(p.clone()),
            CaFile::Auto => ca_bundle::resolve_auto(self.home.as_deref())
                .await
                .map_err(|source| TargetError::NoCaBundle {
                    target: target.name.clone(),
                    source,
                }),
        }
    }

    pub async fn build(
        &self,
        target: &Target,
        settings: &Settings,
    ) -> Result<TargetContext, TargetError> {
        let ca = self.ca_file(target).await?;
        let tls = server_trust(&ca, &target.host).map_err(|source| TargetError::Tls {
            target: target.name.clone(),
            source,
        })?;
        let signer = self.signers.get(target).await?;
        let (region, _) = resolve_region(target.region.as_deref(), &target.host, Some(&signer))
            .await
            .ok_or_else(|| TargetError::NoRegion {
                target: target.name.clone(),
                host: target.host.clone(),
            })?;
        let cluster = match target.topology {
            Topology::Off => None,
            Topology::Auto => ClusterEndpoint::parse(&target.host),
            Topology::Aurora => Some(ClusterEndpoint::parse(&target.host).ok_or_else(|| {
                TargetError::NotAurora {
                    target: target.name.clone(),
                    host: target.host.clone(),
                }
            })?),
        };
        let dial = target
            .connect_to
            .clone()
            .or_else(|| Resolve::lookup(&settings.resolve, &target.host, target.port))
            .unwrap_or_else(|| (target.host.clone(), target.port));
        Ok(TargetContext {
            endpoint: Arc::new(Endpoint {
                host: target.host.clone(),
                port: target.port,
                dial,
                trust: Arc::new(tls),
                instance: None,
            }),
            cluster,
            resolve: settings.resolve.clone(),
            name: target.name.clone(),
            host: target.host.clone(),
            port: target.port,
            region,
            database: target.database.clone(),
            forced_user: target.user.clone(),
            signer,
            rate: RateLimiter::new(settings.max_connect_rate),
            connect_timeout: settings.connect_timeout,
            pool_mode: target.pool_mode,
        })
    }

    /// Whether the CA bundle `current` was built from still holds the same bytes: a rotated
    /// file at the same path must apply to new connections after SIGHUP.
    pub async fn same_ca(&self, current: &TargetContext, target: &Target) -> bool {
        match self.ca_file(target).await {
            Ok(path) => read_same(&path, &current.endpoint.trust.ca_pem),
            Err(_) => false,
        }
    }
}

fn read_same(path: &Path, pem: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|now| now == pem)
}
