//! Checks that span several settings (§5 of the spec: loopback only unless allow_remote, and
//! allow_remote only with client TLS and a client password).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{ConfigError, Origin};
use crate::settings::{ClientTls, Secret};
use crate::target::{ListenAddr, Resolved};

/// The client TLS mode from `client_tls` and the cert/key pair.
pub(crate) fn client_tls(
    mode: Option<(String, Origin)>,
    cert: Option<(PathBuf, Origin)>,
    key: Option<(PathBuf, Origin)>,
) -> Result<ClientTls, ConfigError> {
    const PAIR: &str =
        "client_tls_cert and client_tls_key together (a PEM certificate chain and its key)";
    let files = match (cert, key) {
        (Some((cert, _)), Some((key, _))) => Some(ClientTls::Files { cert, key }),
        (Some((_, origin)), None) => {
            return Err(ConfigError::missing("client_tls_key", PAIR, &origin));
        }
        (None, Some((_, origin))) => {
            return Err(ConfigError::missing("client_tls_cert", PAIR, &origin));
        }
        (None, None) => None,
    };
    match (mode, files) {
        (None, files) => Ok(files.unwrap_or_default()),
        (Some((mode, origin)), Some(_)) => Err(ConfigError::conflict(
            "client_tls",
            mode,
            "client_tls cannot be combined with client_tls_cert/client_tls_key: the files already \
             turn local TLS on; remove one of them",
            &origin,
        )),
        (Some((mode, origin)), None) => match mode.to_ascii_lowercase().as_str() {
            "off" => Ok(ClientTls::Off),
            "self-signed" => Ok(ClientTls::SelfSigned),
            _ => Err(ConfigError::invalid(
                "client_tls",
                mode,
                "off or self-signed (or set client_tls_cert and client_tls_key)",
                &origin,
            )),
        },
    }
}

/// allow_remote is only safe when clients must encrypt and authenticate.
pub(crate) fn allow_remote(
    allow: bool,
    origin: &Origin,
    tls: &ClientTls,
    password: Option<&Secret>,
) -> Result<(), ConfigError> {
    if allow && (!tls.is_on() || password.is_none()) {
        return Err(ConfigError::conflict(
            "allow_remote",
            "true",
            "allow_remote requires client TLS (client_tls = \"self-signed\", or client_tls_cert \
             and client_tls_key) and client_password to be set",
            origin,
        ));
    }
    Ok(())
}

/// Non-loopback TCP addresses need allow_remote; no address may be used twice.
pub(crate) fn listen(
    targets: &[Resolved],
    allow_remote: bool,
    admin: Option<(SocketAddr, Origin)>,
) -> Result<(), ConfigError> {
    let mut seen: HashMap<ListenAddr, &str> = HashMap::new();
    for r in targets {
        let t = &r.target;
        for l in &t.listen {
            if let ListenAddr::Tcp(addr) = l {
                if !allow_remote && !addr.ip().to_canonical().is_loopback() {
                    return Err(ConfigError::conflict(
                        "listen",
                        addr.to_string(),
                        format!(
                            "target {:?} would listen on a non-loopback address: expected \
                             127.0.0.0/8 or ::1, or allow_remote with client TLS and \
                             client_password",
                            t.name
                        ),
                        &r.listen_origin,
                    ));
                }
            }
            if let Some(other) = seen.insert(l.clone(), &t.name) {
                let who = if other == t.name {
                    format!("listed twice for target {other:?}")
                } else {
                    format!("used by both target {other:?} and target {:?}", t.name)
                };
                return Err(ConfigError::conflict(
                    "listen",
                    l.to_string(),
                    format!("{who}: expected each listen address once"),
                    &r.listen_origin,
                ));
            }
        }
    }
    if let Some((addr, origin)) = &admin {
        if !allow_remote && !addr.ip().to_canonical().is_loopback() {
            return Err(ConfigError::conflict(
                "admin_listen",
                addr.to_string(),
                "the admin endpoint would listen on a non-loopback address: expected \
                 127.0.0.0/8 or ::1, or allow_remote",
                origin,
            ));
        }
    }
    // Port 0 asks the OS for a free port, so it cannot clash with anything.
    if let Some((addr, origin)) = admin.filter(|(a, _)| a.port() != 0) {
        if let Some(name) = seen.get(&ListenAddr::Tcp(addr)) {
            return Err(ConfigError::conflict(
                "admin_listen",
                addr.to_string(),
                format!("target {name:?} already listens there: expected a free address"),
                &origin,
            ));
        }
    }
    Ok(())
}
