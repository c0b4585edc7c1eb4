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
    /// `auto`, `aurora` or `off`. Default: the global `topology`.
    pub topology: Option<Val>,
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
    "topology",
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
    // The text is read here rather than by `config`, so that a parse error can be checked
    // against the very text that failed.
    let mut file_text = None;
    if let Some(path) = file {
        let (format, text) = read_file(path)?;
        builder = builder.add_source(config::File::from_str(
            &text,
            config::FileFormat::from(format),
        ));
        file_origin = Origin::file(&path.display().to_string());
        file_text = Some((format, text));
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

    let cfg = builder
        .build()
        .map_err(|e| file_error(file, file_text.as_ref(), e))?;
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

/// The formats a config file may be written in, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Yaml,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        }
    }
}

impl From<Format> for config::FileFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Toml => Self::Toml,
            Format::Yaml => Self::Yaml,
            Format::Json => Self::Json,
        }
    }
}

fn read_file(path: &Path) -> Result<(Format, String), ConfigError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("toml") => Format::Toml,
        Some("yaml" | "yml") => Format::Yaml,
        Some("json") => Format::Json,
        _ => {
            return Err(ConfigError::invalid(
                "config",
                path.display().to_string(),
                "a file ending in .toml, .yaml, .yml or .json",
                &Origin::none(),
            ))
        }
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((format, text))
}

fn file_error(
    file: Option<&Path>,
    file_text: Option<&(Format, String)>,
    e: config::ConfigError,
) -> ConfigError {
    let reason = match (e, file_text) {
        (config::ConfigError::FileParse { cause, .. }, Some((format, text))) => {
            parse_error(*format, text, cause.as_ref())
        }
        // Not from the file: `config` only parses file text.
        (other, _) => other.to_string().trim_end().to_owned(),
    };
    ConfigError::File {
        path: file.map(|p| p.display().to_string()).unwrap_or_default(),
        reason,
    }
}

/// Why a file does not parse, built from the parser's position and description but never
/// from the file's text: the parser would quote the offending line (TOML), or a value that
/// is not a table (`client_password hunter2` in YAML is one string), and that line may hold a
/// password, or be the continuation of one.
fn parse_error(format: Format, text: &str, cause: &(dyn std::error::Error + 'static)) -> String {
    let raw = cause.to_string();
    // The one error `config` itself returns from a format (boxed once more on the way): the
    // top level is not a table. Its message quotes the value, such as the one string that
    // `client_password hunter2` is in YAML.
    let not_a_table = cause
        .downcast_ref::<config::ConfigError>()
        .or_else(|| {
            cause
                .downcast_ref::<Box<config::ConfigError>>()
                .map(AsRef::as_ref)
        })
        .and_then(|e| match e {
            config::ConfigError::Type { unexpected, .. } => Some(unexpected.to_string()),
            _ => None,
        })
        .or_else(|| {
            raw.strip_prefix("invalid type: ")
                .filter(|_| raw.ends_with(", expected a map"))
                .map(str::to_owned)
        });
    let (position, description) = match not_a_table {
        Some(found) => {
            // `string "..."`, `boolean `true``, `sequence`: the kind, without the value.
            let kind = found
                .split(['`', '"', ','])
                .next()
                .unwrap_or_default()
                .trim();
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            (
                None,
                format!("expected a table of settings at the top level, found {article} {kind}"),
            )
        }
        None => describe(format, &raw),
    };
    // Should a parser quote file text after all, what follows a secret key is cut out.
    let description = crate::redact::without(&description, &crate::redact::secret_fragments(text));
    match position {
        Some((line, column)) => {
            let near = key_before(text, line, column)
                .map(|k| format!(" (after key {k})"))
                .unwrap_or_default();
            format!(
                "{} error at line {line}, column {column}{near}: {description}",
                format.name()
            )
        }
        None => format!("{} error: {description}", format.name()),
    }
}

/// `(line, column)` (both from 1) and what went wrong, from a parser's message.
fn describe(format: Format, raw: &str) -> (Option<(usize, usize)>, String) {
    let raw = raw.trim_end();
    match format {
        // "TOML parse error at line 1, column 19\n  |\n1 | <line>\n  |   ^\n<message>\n".
        Format::Toml => {
            let mut lines = raw.lines();
            let first = lines.clone().next().unwrap_or_default();
            let Some(header) = first.strip_prefix("TOML parse error at ") else {
                return (None, one_line(raw.lines()));
            };
            let position = position(header);
            // Drop the excerpt: lines that start, after the line number, with `|`.
            lines.next();
            let message = lines.filter(|l| {
                !l.trim_start()
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .trim_start()
                    .starts_with('|')
            });
            (position, one_line(message))
        }
        // "<info> at byte 17 line 1 column 18".
        Format::Yaml => {
            if let Some((info, at)) = raw.rsplit_once(" at byte ") {
                // The key is quoted as `String("max_connections")`, or as whatever else it
                // is (a list, a table): named only if it is one of ours.
                if let Some(key) = info.strip_suffix(": duplicated key in mapping") {
                    let key = key
                        .strip_prefix("String(\"")
                        .and_then(|k| k.strip_suffix("\")"))
                        .and_then(known_key)
                        .map(|k| format!(" {k}"))
                        .unwrap_or_default();
                    return (position(at), format!("duplicated key{key} in mapping"));
                }
                return (position(at), one_line(info.lines()));
            }
            // `config`'s own YAML errors quote the number or key they could not convert.
            if raw.starts_with("Parsing ") && raw.ends_with(" as floating point number failed") {
                return (
                    None,
                    "a number that is not a valid floating point number".into(),
                );
            }
            if raw.starts_with("Cannot parse ") && raw.ends_with("unsupported hash key type") {
                return (None, "a key that is not a string, number or boolean".into());
            }
            (None, one_line(raw.lines()))
        }
        // "<message> at line 1 column 21".
        Format::Json => match raw.rsplit_once(" at line ") {
            Some((message, at)) => (position(&format!("line {at}")), one_line(message.lines())),
            None => (None, one_line(raw.lines())),
        },
    }
}

fn one_line<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `line 1, column 19` / `line 1 column 19` → `(1, 19)`.
fn position(s: &str) -> Option<(usize, usize)> {
    let number_after = |word: &str| -> Option<usize> {
        let rest = &s[s.find(word)? + word.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((number_after("line ")?, number_after("column ")?))
}

/// The last known key written before the error, on its line or the lines above: a name this
/// program defines, so it is safe to show whatever the file holds.
fn key_before(text: &str, line: usize, column: usize) -> Option<&'static str> {
    let lines: Vec<&str> = text.lines().collect();
    let last = line.checked_sub(1)?.min(lines.len().checked_sub(1)?);
    (0..=last).rev().find_map(|i| {
        let l = lines[i];
        let l = if i + 1 == line {
            let end = l
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(l.len(), |(b, _)| b);
            &l[..end]
        } else {
            l
        };
        last_known_key(l)
    })
}

/// A top-level or target key of this program, as the `'static` name.
fn known_key(word: &str) -> Option<&'static str> {
    top_level_keys()
        .iter()
        .chain(TARGET_KEYS)
        .chain(&["host", "port"])
        .find(|k| **k == word)
        .copied()
}

fn last_known_key(line: &str) -> Option<&'static str> {
    let mut found = None;
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        // A key is followed, perhaps after its closing quote, by `=` or `:`.
        let sep = after.trim_start_matches(['"', '\'', ' ', '\t']);
        if sep.starts_with(['=', ':']) {
            if let Some(k) = known_key(word) {
                found = Some(k);
            }
        }
        rest = after;
    }
    found
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
    // serde quotes the value (`string "..."`): not that of a secret.
    let value = if crate::redact::is_secret_key(&path) {
        crate::redact::REDACTED.to_owned()
    } else {
        value
    };
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
