//! Start-up: resolved settings → target contexts, signers and bound listeners.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rds_iam_config::{CaFile, ListenAddr, Secret, Settings, Target};
use rds_iam_protocol::scram::{ScramSecret, DEFAULT_ITERATIONS};
use rds_iam_signer::{region_from_host, CredentialOptions, Signer, SignerError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::context::{SharedContext, TargetContext};
use crate::listen::{bind_tcp, bind_unix, ListenError, Listener};
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::route::ClientPolicy;
use crate::tls::{client_config, crypto_provider, server_name, TlsConfigError};

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
    #[error("target {target}: ca_file = auto: {source}; fetch the bundle with: mkdir -p ~/.cache/rds-iam-proxy && curl -fsSo ~/.cache/rds-iam-proxy/global-bundle.pem {url}", url = crate::ca_bundle::GLOBAL_BUNDLE_URL)]
    NoCaBundle {
        target: String,
        source: crate::ca_bundle::AutoCaError,
    },
    #[error(transparent)]
    ClientTls(#[from] crate::client_tls::ClientTlsError),
    #[error("no secure random source for the client password's salt")]
    Random,
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
            | Self::NoRegion { .. }
            | Self::ClientTls(_) => 2,
            Self::Signer(_) | Self::Listen(_) | Self::Random => 1,
        }
    }
}

async fn resolve_ca(target: &Target) -> Result<PathBuf, StartupError> {
    match &target.ca_file {
        CaFile::Path(p) => Ok(p.clone()),
        CaFile::Auto => {
            crate::ca_bundle::resolve_auto()
                .await
                .map_err(|source| StartupError::NoCaBundle {
                    target: target.name.clone(),
                    source,
                })
        }
    }
}

/// Signers shared by targets with the same credential options. Clones share the pool, so
/// targets added by a reload reuse the signers (and cached tokens) of the running ones.
#[derive(Default, Clone)]
pub struct SignerPool {
    signers: Arc<Mutex<HashMap<SignerKey, Signer>>>,
}

type SignerKey = (Option<String>, Option<String>);

impl SignerPool {
    pub async fn get(&mut self, target: &Target) -> Result<Signer, StartupError> {
        let key = (target.profile.clone(), target.role_arn.clone());
        if let Some(s) = self.lock().get(&key) {
            return Ok(s.clone());
        }
        let signer = Signer::from_aws_config(CredentialOptions {
            profile: target.profile.clone(),
            role_arn: target.role_arn.clone(),
            region: target.region.clone(),
        })
        .await?;
        // Another holder of the pool may have made one meanwhile: keep the first.
        Ok(self.lock().entry(key).or_insert(signer).clone())
    }

    pub fn all(&self) -> Vec<Signer> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SignerKey, Signer>> {
        self.signers.lock().unwrap_or_else(PoisonError::into_inner)
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
    let ca = resolve_ca(target).await?;
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

/// A bound listen address of a target, before it is given a route.
#[derive(Debug)]
pub struct Bound {
    pub addr: ListenAddr,
    pub listener: Listener,
    pub target: Arc<TargetContext>,
}

/// Binds every listen address of `target`.
pub async fn bind_target(
    target: &Target,
    context: Arc<TargetContext>,
    settings: &Settings,
) -> Result<Vec<Bound>, StartupError> {
    let mut bound = Vec::new();
    for addr in &target.listen {
        bound.push(Bound {
            addr: addr.clone(),
            listener: bind_addr(addr, settings.unix_socket_mode).await?,
            target: context.clone(),
        });
    }
    Ok(bound)
}

/// Binds one address (unix sockets with `mode`).
pub async fn bind_addr(addr: &ListenAddr, mode: u32) -> Result<Listener, ListenError> {
    match addr {
        ListenAddr::Tcp(a) => bind_tcp(*a).await,
        unix @ ListenAddr::Unix { .. } => bind_unix(&unix.socket_path(), mode).await,
    }
}

/// The client-side policy of `settings`: local TLS (a self-signed certificate is generated
/// here) and the client password's SCRAM verifier.
pub fn client_policy(settings: &Settings) -> Result<ClientPolicy, StartupError> {
    Ok(ClientPolicy {
        tls: crate::client_tls::acceptor(&settings.client_tls)?,
        password: settings
            .client_password
            .as_ref()
            .map(client_password_verifier)
            .transpose()?,
    })
}

/// The SCRAM verifier of `client_password`, with a fresh random salt.
pub fn client_password_verifier(password: &Secret) -> Result<ScramSecret, StartupError> {
    let mut salt = [0u8; 16];
    crypto_provider()
        .secure_random
        .fill(&mut salt)
        .map_err(|_| StartupError::Random)?;
    Ok(ScramSecret::from_password(
        password.expose(),
        &salt,
        DEFAULT_ITERATIONS,
    ))
}
