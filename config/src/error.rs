//! The one error type of this crate. Every variant names the key the user has to fix; the
//! proxy maps all of them to exit code 2.

use std::fmt;

/// Where a value came from, so a message can point at the flag, variable or file to fix.
/// Rendered as a suffix such as ` (from --listen)`; empty for defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin(String);

impl Origin {
    pub(crate) fn none() -> Self {
        Self(String::new())
    }

    pub(crate) fn flag(key: &str) -> Self {
        Self(format!("from --{}", key.replace('_', "-")))
    }

    pub(crate) fn env(var: &str) -> Self {
        Self(format!("from environment variable {var}"))
    }

    pub(crate) fn file(path: &str) -> Self {
        Self(format!("in {path}"))
    }

    pub(crate) fn text(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The bare description (`from --listen`), empty for defaults.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

/// A bad command line, environment or config file. `key()` is the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for {key}: expected {expected}{origin}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
        origin: Origin,
    },
    /// A value that parses but cannot be combined with the rest of the settings.
    #[error("invalid value {value:?} for {key}: {reason}{origin}")]
    Conflict {
        key: String,
        value: String,
        reason: String,
        origin: Origin,
    },
    /// A setting, environment variable or TARGET query key this program does not know.
    #[error("unknown key {key:?}{origin}: expected one of {expected}")]
    UnknownKey {
        key: String,
        expected: String,
        origin: Origin,
    },
    /// A required setting that no layer provides.
    #[error("missing {key}: expected {expected}{origin}")]
    Missing {
        key: String,
        expected: String,
        origin: Origin,
    },
    /// The config file cannot be read or parsed.
    #[error("cannot read config file {path:?}: {reason}")]
    File { path: String, reason: String },
}

impl ConfigError {
    /// The setting (or environment variable, or TARGET query key) the message is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Invalid { key, .. }
            | Self::Conflict { key, .. }
            | Self::UnknownKey { key, .. }
            | Self::Missing { key, .. } => key,
            Self::File { .. } => "config",
        }
    }

    pub(crate) fn invalid(
        key: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
        origin: &Origin,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.into(),
            expected: expected.into(),
            origin: origin.clone(),
        }
    }

    pub(crate) fn conflict(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
        origin: &Origin,
    ) -> Self {
        Self::Conflict {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
            origin: origin.clone(),
        }
    }

    pub(crate) fn missing(
        key: impl Into<String>,
        expected: impl Into<String>,
        origin: &Origin,
    ) -> Self {
        Self::Missing {
            key: key.into(),
            expected: expected.into(),
            origin: origin.clone(),
        }
    }
}
