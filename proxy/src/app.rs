//! Start-up: resolved settings → target contexts, signers and bound listeners.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rds_iam_config::{CaFile, ListenAddr, Settings, Target};
use rds_iam_signer::{region_from_host, CredentialOptions, Signer, SignerError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::context::{SharedContext, TargetContext};
use crate::listen::{bind_tcp, bind_unix, ListenError};
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::server::BoundListener;
use crate::tls::{client_config, server_name, TlsConfigError};

/// Why the proxy could not start. Each maps to an exit code: settings problems are 2, the rest 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] rds_iam_config::ConfigError),
    #[error("target {target}: {source}")]
    Tls {
        target: String,
        source: TlsConfigError,
    },
    #[error("target {target}: no CA bundle found (ca_file = auto looked in {looked}); fetch it with: mkdir -p ~/.cache/rds-iam-proxy && curl -fsSo ~/.cache/rds-iam-proxy/global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem")]
    NoCaBundle { target: String, looked: String },
    #[error("target {target}: cannot tell the signing region of {host}: set region (--region or ?region=) or AWS_REGION")]
    NoRegion { target: String, host: String },
    #[error("AWS configuration: {0}")]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Listen(#[from] ListenError),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::Tls { .. }
            | Self::NoCaBundle { .. }
            | Self::NoRegion { .. } => 2,
            Self::Signer(_) | Self::Listen(_) => 1,
        }
    }
}

/// Places `ca_file = auto` looks, in order.
pub fn auto_ca_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/etc/rds-iam-proxy/global-bundle.pem")];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(".cache/rds-iam-proxy/global-bundle.pem"));
    }
    paths
}

fn resolve_ca(target: &Target) -> Result<PathBuf, StartupError> {
    match &target.ca_file {
        CaFile::Path(p) => Ok(p.clone()),
        CaFile::Auto => {
            let paths = auto_ca_paths();
            paths
                .iter()
                .find(|p| p.exists())
                .cloned()
                .ok_or_else(|| StartupError::NoCaBundle {
                    target: target.name.clone(),
                    looked: paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        }
    }
}

/// Signers shared by targets with the same credential options.
#[derive(Default)]
pub struct SignerPool {
    signers: HashMap<(Option<String>, Option<String>), Signer>,
}

impl SignerPool {
    pub async fn get(&mut self, target: &Target) -> Result<Signer, StartupError> {
        let key = (target.profile.clone(), target.role_arn.clone());
        if let Some(s) = self.signers.get(&key) {
            return Ok(s.clone());
        }
        let signer = Signer::from_aws_config(CredentialOptions {
            profile: target.profile.clone(),
            role_arn: target.role_arn.clone(),
            region: target.region.clone(),
        })
        .await?;
        self.signers.insert(key, signer.clone());
        Ok(signer)
    }

    pub fn all(&self) -> impl Iterator<Item = &Signer> {
        self.signers.values()
    }
}

pub async fn build_target(
    target: &Target,
    settings: &Settings,
    signers: &mut SignerPool,
) -> Result<TargetContext, StartupError> {
    let tls_err = |source| StartupError::Tls {
        target: target.name.clone(),
        source,
    };
    let ca = resolve_ca(target)?;
    let tls = client_config(&ca).map_err(tls_err)?;
    let server_name = server_name(&target.host).map_err(tls_err)?;
    let signer = signers.get(target).await?;
    let region = match target
        .region
        .clone()
        .or_else(|| region_from_host(&target.host))
    {
        Some(r) => r,
        None => signer
            .default_region()
            .await
            .ok_or_else(|| StartupError::NoRegion {
                target: target.name.clone(),
                host: target.host.clone(),
            })?,
    };
    Ok(TargetContext {
        name: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        region,
        database: target.database.clone(),
        forced_user: target.user.clone(),
        dial: target
            .connect_to
            .clone()
            .unwrap_or_else(|| (target.host.clone(), target.port)),
        tls,
        server_name,
        signer,
        rate: RateLimiter::new(settings.max_connect_rate),
        connect_timeout: settings.connect_timeout,
    })
}

pub fn shared_context(settings: &Settings, metrics: Metrics) -> SharedContext {
    SharedContext {
        startup_timeout: settings.startup_timeout,
        connection_limit: settings
            .max_connections
            .map(|n| (Arc::new(Semaphore::new(n.get())), n.get())),
        cancel: Arc::new(CancelMap::default()),
        close_all: CancellationToken::new(),
        tracker: TaskTracker::new(),
        metrics,
    }
}

/// Binds every listen address of `target`.
pub async fn bind_target(
    target: &Target,
    context: Arc<TargetContext>,
    settings: &Settings,
) -> Result<Vec<BoundListener>, StartupError> {
    let mut bound = Vec::new();
    for addr in &target.listen {
        let listener = match addr {
            ListenAddr::Tcp(a) => bind_tcp(*a).await?,
            unix @ ListenAddr::Unix { .. } => {
                bind_unix(&unix.socket_path(), settings.unix_socket_mode).await?
            }
        };
        bound.push(BoundListener {
            listener,
            target: context.clone(),
        });
    }
    Ok(bound)
}
