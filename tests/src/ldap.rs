//! A tiny LDAP server: PostgreSQL's `ldap` auth method sends the cleartext password it got
//! (the IAM token) as a simple bind for `uid=USER,ou=iam`; we answer with the token check.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::{LdapCodec, ServerOps};
use tokio_util::codec::Framed;

use crate::checker::{Refusal, TokenChecker};
use crate::runtime::Background;

pub const BIND_DN_PREFIX: &str = "uid=";
pub const BIND_DN_SUFFIX: &str = ",ou=iam";

/// Running LDAP server; stops when dropped.
pub struct LdapServer {
    addr: SocketAddr,
    _background: Background,
}

impl LdapServer {
    /// Listens on 127.0.0.1:0 and checks every bind with `checker`.
    pub fn start(checker: Arc<TokenChecker>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let background = Background::new("standin-ldap")?;
        background.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, checker.clone()));
            }
        });
        Ok(Self {
            addr,
            _background: background,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// pg_hba.conf options that point PostgreSQL's `ldap` method at this server.
    pub fn hba_options(&self) -> String {
        format!(
            "ldapserver={} ldapport={} ldapprefix=\"{BIND_DN_PREFIX}\" ldapsuffix=\"{BIND_DN_SUFFIX}\"",
            self.addr.ip(),
            self.addr.port()
        )
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, checker: Arc<TokenChecker>) {
    let mut framed = Framed::new(stream, LdapCodec::default());
    while let Some(Ok(msg)) = framed.next().await {
        let reply = match ServerOps::try_from(msg) {
            Ok(ServerOps::SimpleBind(bind)) => {
                let user = bind
                    .dn
                    .strip_prefix(BIND_DN_PREFIX)
                    .and_then(|rest| rest.strip_suffix(BIND_DN_SUFFIX));
                let outcome = match user {
                    Some(user) => checker.verify(&bind.pw, user).map(|_| ()),
                    None => Err(Refusal::Malformed(format!(
                        "unexpected bind DN {}",
                        bind.dn
                    ))),
                };
                match outcome {
                    Ok(()) => bind.gen_success(),
                    Err(_) => bind.gen_invalid_cred(),
                }
            }
            // Unbind, or anything PostgreSQL never sends: end the session.
            _ => break,
        };
        if framed.send(reply).await.is_err() {
            break;
        }
    }
}
