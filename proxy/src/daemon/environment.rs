//! The process environment, read once in `main` and passed down: settings, `ca_file = auto`'s
//! `$HOME`, systemd's `$NOTIFY_SOCKET`, `check` and `policy` all see the same snapshot, and
//! tests can hand in their own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::sd_notify::NotifySocket;

#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    vars: Arc<HashMap<String, String>>,
}

impl Environment {
    /// This process's environment now (variables that are not UTF-8 are left out).
    pub fn capture() -> Environment {
        Environment {
            vars: Arc::new(std::env::vars().collect()),
        }
    }

    pub fn vars(&self) -> &HashMap<String, String> {
        &self.vars
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.vars.get("HOME").map(PathBuf::from)
    }

    /// Where systemd wants readiness notifications, if it does.
    pub fn notify_socket(&self) -> Option<NotifySocket> {
        NotifySocket::parse(self.vars.get("NOTIFY_SOCKET")?)
    }
}
