//! Aurora topology settings (spec §9): whether a target follows its cluster's instances, and
//! how the monitor reads them.

use std::time::Duration;

use crate::error::ConfigError;
use crate::value::Field;

/// Whether a target follows its Aurora cluster's writer and readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// On when the host is an Aurora cluster or reader endpoint by name.
    #[default]
    Auto,
    /// On; a host that is not a cluster endpoint by name is a settings error at start.
    Aurora,
    /// Plain DNS: dial the endpoint as given.
    Off,
}

impl Topology {
    pub fn label(self) -> &'static str {
        match self {
            Topology::Auto => "auto",
            Topology::Aurora => "aurora",
            Topology::Off => "off",
        }
    }
}

/// How the topology of a cluster is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologySettings {
    /// How often `aurora_replica_status()` is read while nothing is wrong. Default 30s.
    pub refresh: Duration,
    /// Readers lagging more get no new sessions. Default 10s.
    pub max_replica_lag: Duration,
    /// The monitor's database user when the target forces none. Default: the first client's
    /// user.
    pub user: Option<String>,
}

pub(crate) fn parse_topology(f: &Field<'_>) -> Result<Topology, ConfigError> {
    match f.string()?.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Topology::Auto),
        "aurora" => Ok(Topology::Aurora),
        "off" => Ok(Topology::Off),
        _ => Err(f.invalid("auto, aurora or off")),
    }
}
