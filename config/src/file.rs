//! The config file and `RDS_IAM_PROXY_*` variables, layered by the `config` crate into one
//! untyped [`RawSettings`], whose keys come from the table in `schema.rs`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{ConfigError, Origin};
use crate::schema::{env_var, top_level_keys, RawSettings};
use crate::value::Val;

/// Prefix of every environment variable this program reads.
pub const ENV_PREFIX: &str = "RDS_IAM_PROXY_";

/// One `[[target]]` table, or a TARGET URL turned into the same shape.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    /// Used in logs, metrics and to pick the target on the command line. Default: the first
    /// label of the host.
    pub name: Option<Val>,
    /// Endpoint the token is signed for and the TLS name. Required.
    pub host: Option<Val>,
    /// Default `5432`.
    pub port: Option<Val>,
    /// Default: the global `region`, else parsed from the host by the proxy.
    pub region: Option<Val>,
    /// Database used when the client sends none. Default none.
    pub database: Option<Val>,
    /// Forced upstream user. Default: the global `user`.
    pub user: Option<Val>,
    /// List of `IP:PORT` and `unix:DIR`. Default: assigned from the global `listen`.
    pub listen: Option<Val>,
    /// Default: the global `connect_to`, else `host:port`.
    pub connect_to: Option<Val>,
    /// Default: the global `ca_file`, else `auto`.
    pub ca_file: Option<Val>,
    /// Default: the global `role_arn`.
    pub role_arn: Option<Val>,
    /// Default: the global `profile`.
    pub profile: Option<Val>,
    /// `none` or `session`. Default: the global `pool_mode`.
    pub pool_mode: Option<Val>,
}

/// Keys of a target, in the order shown in messages; also the TARGET URL query keys.
pub(crate) const TARGET_KEYS: &[&str] = &[
    "name",
    "region",
    "database",
    "user",
    "listen",
    "connect_to",
    "ca_file",
    "role_arn",
    "profile",
    "pool_mode",
];

/// Variables read directly rather than mapped onto a file key.
pub(crate) const ENV_CONFIG: &str = "RDS_IAM_PROXY_CONFIG";
pub(crate) const ENV_TARGETS: &str = "RDS_IAM_PROXY_TARGETS";

/// File + environment layers, and where each top-level key's value came from.
pub(crate) struct Layers {
    pub raw: RawSettings,
    pub origins: HashMap<String, Origin>,
    pub file_origin: Origin,
}

/// Reads the file (if any) under the `RDS_IAM_PROXY_*` variables.
pub(crate) fn read(
    file: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Layers, ConfigError> {
    let mut builder = config::Config::builder();
    let mut file_origin = Origin::none();
    if let Some(path) = file {
        builder = builder.add_source(file_source(path)?);
        file_origin = Origin::file(&path.display().to_string());
    }

    // Only our prefix, upper case as documented; empty values count as unset (Kubernetes
    // manifests often carry `value: ""`). CONFIG and TARGETS are handled by the caller, and
    // `target` is a list of tables that a variable cannot express.
    let mut ours = config::Map::new();
    for (var, value) in env {
        let Some(key) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if value.is_empty() || var == ENV_CONFIG || var == ENV_TARGETS {
            continue;
        }
        if key.is_empty() || key == "TARGET" || key.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(unknown_env(var));
        }
        ours.insert(var.clone(), value.clone());
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
            .prefix_separator("_")
            .source(Some(ours)),
    );

    let cfg = builder.build().map_err(|e| file_error(file, e))?;
    let origins = collect_origins(&cfg, &file_origin);
    let raw: RawSettings = cfg
        .try_deserialize()
        .map_err(|e| deserialize_error(e, &origins, &file_origin))?;
    Ok(Layers {
        raw,
        origins,
        file_origin,
    })
}

fn file_source(
    path: &Path,
) -> Result<config::File<config::FileSourceFile, config::FileFormat>, ConfigError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("toml") => config::FileFormat::Toml,
        Some("yaml" | "yml") => config::FileFormat::Yaml,
        Some("json") => config::FileFormat::Json,
        _ => {
            return Err(ConfigError::invalid(
                "config",
                path.display().to_string(),
                "a file ending in .toml, .yaml, .yml or .json",
                &Origin::none(),
            ))
        }
    };
    // `config` treats a missing required file with a message that hides the path; check first.
    if let Err(e) = std::fs::metadata(path) {
        return Err(ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        });
    }
    Ok(config::File::from(path).format(format).required(true))
}

fn file_error(file: Option<&Path>, e: config::ConfigError) -> ConfigError {
    // The parser's own message, without `config`'s " in <relative path>" suffix.
    let reason = match e {
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    ConfigError::File {
        path: file.map(|p| p.display().to_string()).unwrap_or_default(),
        reason: reason.trim_end().to_owned(),
    }
}

fn unknown_env(var: &str) -> ConfigError {
    let mut keys: Vec<String> = top_level_keys()
        .iter()
        .filter(|k| **k != "target")
        .map(|k| env_var(k))
        .collect();
    keys.push(ENV_CONFIG.into());
    keys.push(ENV_TARGETS.into());
    ConfigError::UnknownKey {
        key: var.to_owned(),
        expected: keys.join(", "),
        origin: Origin::text("environment variable"),
    }
}

fn collect_origins(cfg: &config::Config, file_origin: &Origin) -> HashMap<String, Origin> {
    use config::Source;
    let Ok(map) = cfg.collect() else {
        return HashMap::new();
    };
    // `config` records file origins relative to the working directory; the path as the user
    // gave it reads better, and there is only one file.
    map.into_iter()
        .map(|(key, value)| {
            let origin = match value.origin() {
                Some("the environment") => Origin::env(&env_var(&key)),
                _ => file_origin.clone(),
            };
            (key, origin)
        })
        .collect()
}

/// Turns a serde error from the `config` crate back into one that names the key.
fn deserialize_error(
    e: config::ConfigError,
    origins: &HashMap<String, Origin>,
    file_origin: &Origin,
) -> ConfigError {
    let (path, inner) = split_key(e);
    // serde's wording for deny_unknown_fields: "unknown field `x`, expected ...".
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        if path.is_empty() {
            let from_env = origins
                .get(&field)
                .is_some_and(|o| o.as_str().starts_with("from environment"));
            if from_env {
                return unknown_env(&env_var(&field));
            }
            return ConfigError::UnknownKey {
                key: field,
                expected: top_level_keys().join(", "),
                origin: file_origin.clone(),
            };
        }
        let mut expected = vec!["host", "port"];
        expected.extend_from_slice(TARGET_KEYS);
        return ConfigError::UnknownKey {
            key: field,
            expected: expected.join(", "),
            origin: Origin::text(format!("in {path} {}", file_origin.as_str())),
        };
    }
    let key = path.split(['.', '[']).next().unwrap_or_default().to_owned();
    let origin = origins
        .get(&key)
        .cloned()
        .unwrap_or_else(|| file_origin.clone());
    // serde's wording: "invalid type: map, expected a sequence"; the value is the middle part.
    let value = inner
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split(", expected").next())
        .map_or(inner.clone(), str::to_owned);
    let expected = if key == "target" {
        "a list of [[target]] tables".to_owned()
    } else {
        "a string, number, boolean or list".to_owned()
    };
    ConfigError::Invalid {
        key: if path.is_empty() {
            "config".into()
        } else {
            path
        },
        value,
        expected,
        origin,
    }
}

/// `(key path, message without the key)` of a `config` error.
fn split_key(e: config::ConfigError) -> (String, String) {
    match e {
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, msg) = split_key(*error);
            let key = key.unwrap_or_default();
            (if inner_key.is_empty() { key } else { inner_key }, msg)
        }
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key.unwrap_or_default(),
            format!("{unexpected} where {expected} was expected"),
        ),
        other => (String::new(), other.to_string()),
    }
}

/// Lookup of a key's origin, defaulting to the file (keys only a file can set).
pub(crate) fn origin_of(layers: &Layers, key: &str) -> Origin {
    layers
        .origins
        .get(key)
        .cloned()
        .unwrap_or_else(|| layers.file_origin.clone())
}
