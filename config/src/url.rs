//! TARGET URLs: `postgres://[USER@]HOST[:PORT][/DATABASE][?KEY=VALUE&...]`, turned into the same
//! shape as a `[[target]]` table so both resolve through one code path.

use percent_encoding::percent_decode_str;
use url::{Host, Url};

use crate::error::{ConfigError, Origin};
use crate::file::{RawTarget, TARGET_KEYS};
use crate::redact;
use crate::value::Val;

/// Whether a TARGET argument is a URL (rather than the name of a `[[target]]`).
pub(crate) fn is_url(target: &str) -> bool {
    target.contains("://")
}

/// Parses one TARGET URL. `origin` says where the argument came from.
pub(crate) fn parse(text: &str, origin: &Origin) -> Result<RawTarget, ConfigError> {
    const EXPECTED: &str = "postgres://[USER@]HOST[:PORT][/DATABASE][?KEY=VALUE&...]";
    // Shown in every message instead of the text as given: a password, even in a URL that
    // does not parse, reads `***`.
    let shown = redact::url(text);
    let bad =
        |why: &str| ConfigError::invalid("TARGET", &*shown, format!("{EXPECTED} ({why})"), origin);

    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(bad("the scheme must be postgres:// or postgresql://"));
    }
    if url.password().is_some() {
        // Never echo the password back: report the URL without it.
        let mut without = url.clone();
        let _ = without.set_password(None);
        return Err(ConfigError::conflict(
            "TARGET",
            without.as_str(),
            "a TARGET must not contain a password: the proxy authenticates with IAM tokens",
            origin,
        ));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => {
            decode(d).map_err(|_| bad("host is not UTF-8"))?
        }
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host")),
    };
    let origin = origin_for(text, origin);

    let mut raw = RawTarget {
        host: Some(Val::Str(host)),
        port: url.port().map(|p| Val::Int(p.into())),
        ..RawTarget::default()
    };
    if url.port() == Some(0) {
        return Err(ConfigError::invalid(
            "port",
            "0",
            "a port number 1-65535",
            &origin,
        ));
    }
    if !url.username().is_empty() {
        let user = decode(url.username()).map_err(|_| bad("user is not UTF-8"))?;
        raw.user = Some(Val::Str(user));
    }
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if !path.is_empty() {
        if path.contains('/') {
            return Err(bad("the path must be a single database name"));
        }
        let db = decode(path).map_err(|_| bad("database is not UTF-8"))?;
        raw.database = Some(Val::Str(db));
    }

    for (key, value) in url.query_pairs() {
        let value = Val::Str(value.into_owned());
        let slot = match key.as_ref() {
            "name" => &mut raw.name,
            "region" => &mut raw.region,
            "database" => &mut raw.database,
            "user" => &mut raw.user,
            "connect_to" => &mut raw.connect_to,
            "ca_file" => &mut raw.ca_file,
            "role_arn" => &mut raw.role_arn,
            "profile" => &mut raw.profile,
            "pool_mode" => &mut raw.pool_mode,
            "topology" => &mut raw.topology,
            // `listen` may repeat: `?listen=127.0.0.1:6000&listen=unix:/tmp`.
            "listen" => {
                raw.listen = Some(match raw.listen.take() {
                    None => value,
                    Some(Val::List(mut items)) => {
                        items.push(value);
                        Val::List(items)
                    }
                    Some(first) => Val::List(vec![first, value]),
                });
                continue;
            }
            other => {
                return Err(ConfigError::UnknownKey {
                    key: other.to_owned(),
                    expected: TARGET_KEYS.join(", "),
                    origin,
                })
            }
        };
        if slot.is_some() {
            // Also catches `postgres://u@h?user=v` and `/db?database=x`: which one would win
            // is not obvious, so neither does.
            return Err(ConfigError::conflict(
                key.as_ref(),
                value.to_string(),
                "given more than once in this TARGET",
                &origin,
            ));
        }
        *slot = Some(value);
    }
    Ok(raw)
}

/// `in TARGET <url>`, with the URL's password (if any) masked.
pub(crate) fn origin_for(text: &str, outer: &Origin) -> Origin {
    let text = redact::url(text);
    if outer.as_str().is_empty() {
        Origin::text(format!("in TARGET {text}"))
    } else {
        Origin::text(format!("in TARGET {text} {}", outer.as_str()))
    }
}

fn decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned())
}
