//! Untyped values as they arrive from a flag, a variable, a file or a TARGET query, and the
//! parsers that turn them into typed settings. Parsing here rather than in serde lets every
//! message carry the key, the bad value, what was expected and where it came from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

pub(crate) use resolve::parse_resolve;

mod resolve;

use crate::error::{ConfigError, Origin};

/// One raw setting value. Environment variables and flags are always `Str`; files may give
/// native numbers, booleans and lists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    List(Vec<Val>),
    /// A file's table, keys in file order (`resolve`).
    Map(Vec<(String, Val)>),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Self::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean, list or table")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
                Ok(Val::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
                Ok(Val::Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
                Ok(Val::Int(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Val, E> {
                Ok(Val::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Val, E> {
                i128::try_from(v)
                    .map(Val::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
                Ok(Val::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
                Ok(Val::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
                Ok(Val::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Val::List(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Val::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value together with its key and origin, ready to be parsed.
pub(crate) struct Field<'a> {
    pub key: &'a str,
    pub val: &'a Val,
    pub origin: Origin,
}

impl<'a> Field<'a> {
    pub fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError::invalid(self.key, self.val.to_string(), expected, &self.origin)
    }

    fn scalar_text(&self) -> Option<String> {
        match self.val {
            Val::Str(s) => Some(s.trim().to_owned()),
            Val::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// A non-empty string (numbers are accepted as their text, e.g. a database named `2024`).
    pub fn string(&self) -> Result<String, ConfigError> {
        const EXPECTED: &str = "a non-empty string";
        match self.scalar_text() {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, min: i128, max: i128, expected: &str) -> Result<i128, ConfigError> {
        let n = match self.val {
            Val::Int(i) => Some(*i),
            Val::Str(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        const EXPECTED: &str = "true or false";
        match self.val {
            Val::Bool(b) => Ok(*b),
            Val::Int(0) => Ok(false),
            Val::Int(1) => Ok(true),
            Val::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(self.invalid(EXPECTED)),
            },
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    /// A humantime duration (`30s`, `5m`, `1m 30s`); a bare `0` is zero.
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        const EXPECTED: &str = "a duration such as \"30s\" or \"5m\"";
        match self.val {
            Val::Int(0) => Ok(Duration::ZERO),
            Val::Str(s) if s.trim() == "0" => Ok(Duration::ZERO),
            Val::Str(s) => humantime::parse_duration(s.trim()).map_err(|_| self.invalid(EXPECTED)),
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    /// A TCP address: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or a bare `PORT` (loopback).
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        const EXPECTED: &str = "IP:PORT such as \"127.0.0.1:5432\" or \"[::1]:5432\"";
        let text = self.scalar_text().ok_or_else(|| self.invalid(EXPECTED))?;
        parse_socket_addr(&text).ok_or_else(|| self.invalid(EXPECTED))
    }

    /// `HOST:PORT`, `[IPv6]:PORT`; the host is kept as a name (resolved per connection).
    pub fn host_port(&self) -> Result<(String, u16), ConfigError> {
        const EXPECTED: &str = "HOST:PORT such as \"127.0.0.1:15432\"";
        let text = self.scalar_text().ok_or_else(|| self.invalid(EXPECTED))?;
        parse_host_port(&text).ok_or_else(|| self.invalid(EXPECTED))
    }

    pub fn path(&self) -> Result<PathBuf, ConfigError> {
        match self.val {
            Val::Str(s) if !s.trim().is_empty() => Ok(PathBuf::from(s.trim())),
            _ => Err(self.invalid("a file system path")),
        }
    }

    /// A file mode. Strings are octal (`"0700"`, `"0o770"`, `"770"`); integers are taken as
    /// the number they are, so TOML's `0o770` works but YAML/JSON should quote the mode.
    pub fn mode(&self) -> Result<u32, ConfigError> {
        const EXPECTED: &str = "an octal file mode from \"0000\" to \"0777\" such as \"0700\"";
        let n = match self.val {
            Val::Int(i) => u32::try_from(*i).ok(),
            Val::Str(s) => {
                let s = s.trim();
                let digits = s.strip_prefix("0o").unwrap_or(s);
                if digits.is_empty() {
                    None
                } else {
                    u32::from_str_radix(digits, 8).ok()
                }
            }
            _ => None,
        };
        match n {
            Some(n) if n <= 0o777 => Ok(n),
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    /// One item or a list of items, each handed to `f` as its own field.
    pub fn list<T>(
        &self,
        mut f: impl FnMut(&Field<'a>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        match self.val {
            Val::List(items) => items
                .iter()
                .map(|val| {
                    f(&Field {
                        key: self.key,
                        val,
                        origin: self.origin.clone(),
                    })
                })
                .collect(),
            _ => Ok(vec![f(self)?]),
        }
    }
}

pub(crate) fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    // `localhost` is the one name accepted: resolving names for a bind address would make the
    // loopback check depend on DNS.
    let port = s.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

pub(crate) fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, rest.strip_prefix(':')?)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        if host.contains(':') {
            return None; // an IPv6 address without brackets is ambiguous
        }
        (host, port)
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        let rows: &[(&str, Option<(&str, u16)>)] = &[
            ("127.0.0.1:15432", Some(("127.0.0.1", 15432))),
            ("db.internal:5432", Some(("db.internal", 5432))),
            ("[::1]:5432", Some(("::1", 5432))),
            ("[fe80::1]", None),
            ("::1:5432", None),
            ("[nothex]:1", None),
            (":5432", None),
            ("h:", None),
            ("h:0", None),
            ("h:65536", None),
            ("a b:1", None),
        ];
        for (text, want) in rows {
            let got = parse_host_port(text);
            let got = got.as_ref().map(|(h, p)| (h.as_str(), *p));
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn socket_addr() {
        let rows: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:1", Some("127.0.0.1:1")),
            ("[::1]:2", Some("[::1]:2")),
            ("3", Some("127.0.0.1:3")),
            ("localhost:4", Some("127.0.0.1:4")),
            ("example.com:5", None),
            ("127.0.0.1", None),
            ("", None),
        ];
        for (text, want) in rows {
            let want = want.map(|w| w.parse::<SocketAddr>().unwrap());
            assert_eq!(parse_socket_addr(text), want, "{text}");
        }
    }

    #[test]
    fn modes_and_bools() {
        fn field(val: &Val) -> Field<'_> {
            Field {
                key: "k",
                val,
                origin: Origin::none(),
            }
        }
        for (val, want) in [
            (Val::Str("0700".into()), Some(0o700)),
            (Val::Str("0o755".into()), Some(0o755)),
            (Val::Str("600".into()), Some(0o600)),
            (Val::Int(0o770), Some(0o770)),
            (Val::Str("0o".into()), None),
            (Val::Str("1000".into()), None),
            (Val::Int(-1), None),
            (Val::Bool(true), None),
        ] {
            let got = field(&val).mode().ok();
            assert_eq!(got, want, "{val:?}");
        }
        for (val, want) in [
            (Val::Str("Yes".into()), Some(true)),
            (Val::Str("off".into()), Some(false)),
            (Val::Int(1), Some(true)),
            (Val::Int(2), None),
            (Val::Str("".into()), None),
        ] {
            let got = field(&val).bool().ok();
            assert_eq!(got, want, "{val:?}");
        }
    }
}
