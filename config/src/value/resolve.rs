//! `resolve`: the address dialled for a name, as `curl --resolve` does. Given as
//! `NAME[:PORT]=HOST:PORT` (a flag each, space-separated in the variable, a list in a file) or
//! as a file table `{ "NAME[:PORT]" = "HOST:PORT" }`. The token and TLS still use NAME.

use super::{parse_host_port, Field, Val};
use crate::error::ConfigError;
use crate::settings::Resolve;

const EXPECTED: &str = "NAME[:PORT]=HOST:PORT entries, such as \
                        \"db-1.abc.us-east-1.rds.amazonaws.com:5432=127.0.0.1:15432\"";

/// Every entry of the field, in order; a name given twice is an error.
pub(crate) fn parse_resolve(f: &Field<'_>) -> Result<Vec<Resolve>, ConfigError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    match f.val {
        Val::Str(s) => entries.extend(
            s.split_whitespace()
                .map(split)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| f.invalid(EXPECTED))?,
        ),
        Val::List(items) => {
            for item in items {
                let Val::Str(s) = item else {
                    return Err(f.invalid(EXPECTED));
                };
                entries.push(split(s.trim()).ok_or_else(|| f.invalid(EXPECTED))?);
            }
        }
        Val::Map(map) => {
            for (name, to) in map {
                let Val::Str(to) = to else {
                    return Err(f.invalid(EXPECTED));
                };
                entries.push((name.trim().to_owned(), to.trim().to_owned()));
            }
        }
        _ => return Err(f.invalid(EXPECTED)),
    }
    if entries.is_empty() {
        return Err(f.invalid(EXPECTED));
    }
    let mut out: Vec<Resolve> = Vec::with_capacity(entries.len());
    for (name, to) in entries {
        let (name, port) = match parse_host_port(&name) {
            Some((host, port)) => (host, Some(port)),
            None if valid_name(&name) => (name, None),
            None => return Err(f.invalid(EXPECTED)),
        };
        let to = parse_host_port(&to).ok_or_else(|| f.invalid(EXPECTED))?;
        let name = name.to_ascii_lowercase();
        if out.iter().any(|r| r.name == name && r.port == port) {
            return Err(f.invalid(&format!("each name once ({name} is given twice)")));
        }
        out.push(Resolve { name, port, to });
    }
    Ok(out)
}

fn split(entry: &str) -> Option<(String, String)> {
    let (name, to) = entry.split_once('=')?;
    Some((name.trim().to_owned(), to.trim().to_owned()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Origin;

    fn parse(val: Val) -> Result<Vec<Resolve>, ConfigError> {
        parse_resolve(&Field {
            key: "resolve",
            val: &val,
            origin: Origin::none(),
        })
    }

    #[test]
    fn entries_from_a_string_a_list_and_a_table() {
        let one = Resolve {
            name: "db-1.x.us-east-1.rds.amazonaws.com".into(),
            port: Some(5432),
            to: ("127.0.0.1".into(), 15432),
        };
        let two = Resolve {
            name: "db-2.x.us-east-1.rds.amazonaws.com".into(),
            port: None,
            to: ("bastion".into(), 15433),
        };
        let text = "DB-1.x.us-east-1.rds.amazonaws.com:5432=127.0.0.1:15432 \
                    db-2.x.us-east-1.rds.amazonaws.com=bastion:15433";
        assert_eq!(
            parse(Val::Str(text.into())).unwrap(),
            [one.clone(), two.clone()]
        );
        let list = text.split(' ').map(|s| Val::Str(s.into())).collect();
        assert_eq!(parse(Val::List(list)).unwrap(), [one.clone(), two.clone()]);
        let map = vec![
            (
                "db-1.x.us-east-1.rds.amazonaws.com:5432".into(),
                Val::Str("127.0.0.1:15432".into()),
            ),
            (
                "db-2.x.us-east-1.rds.amazonaws.com".into(),
                Val::Str("bastion:15433".into()),
            ),
        ];
        assert_eq!(parse(Val::Map(map)).unwrap(), [one, two]);
    }

    #[test]
    fn bad_entries_name_the_key() {
        for bad in [
            "",
            " ",
            "a=",
            "=1.2.3.4:5",
            "a=1.2.3.4",
            "a:0=b:1",
            "a b=c:1",
            "a=b:1 a=c:2",
        ] {
            let e = parse(Val::Str(bad.into())).unwrap_err();
            assert_eq!(e.key(), "resolve", "{bad:?}: {e}");
        }
        assert!(parse(Val::Int(1)).is_err());
    }
}
