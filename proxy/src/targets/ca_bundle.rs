//! `ca_file = auto`: the first that exists of the system-wide and the per-user RDS CA bundle,
//! else AWS's global bundle downloaded over verified HTTPS into the per-user cache.

mod download;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use download::download;
pub(crate) use download::DownloadError;

/// Where AWS publishes the CA bundle of every RDS region.
pub(crate) const GLOBAL_BUNDLE_URL: &str =
    "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/// Whole download, DNS to the last byte.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The system-wide bundle, looked at first.
const SYSTEM_BUNDLE: &str = "/etc/rds-iam-proxy/global-bundle.pem";

/// Places `ca_file = auto` looks, in order; the last is also where a download goes.
pub(crate) fn auto_paths(home: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(SYSTEM_BUNDLE)];
    if let Some(home) = home {
        paths.push(home.join(".cache/rds-iam-proxy/global-bundle.pem"));
    }
    paths
}

/// Why `auto` found no bundle.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AutoCaError {
    #[error("no bundle in {looked} and HOME is not set, so there is no cache to download into")]
    NoCache { looked: String },
    #[error("no bundle in {looked}, and downloading it failed: {source}")]
    Download {
        looked: String,
        source: DownloadError,
    },
}

/// Resolves `auto` for this process (real paths, real URL, public web PKI roots). `home` is
/// `$HOME` from the environment read at start.
pub(crate) async fn resolve_auto(home: Option<&Path>) -> Result<PathBuf, AutoCaError> {
    let paths = auto_paths(home);
    if let Some(found) = paths.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let looked = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(cache) = paths.get(1) else {
        return Err(AutoCaError::NoCache { looked });
    };
    tracing::info!(url = GLOBAL_BUNDLE_URL, path = %cache.display(), "downloading the RDS CA bundle");
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    download(GLOBAL_BUNDLE_URL, Arc::new(roots), cache, DOWNLOAD_TIMEOUT)
        .await
        .map_err(|source| AutoCaError::Download { looked, source })?;
    Ok(cache.clone())
}
