//! Keeping secrets out of messages: a password in a config file or in a URL never appears in
//! an error. URL passwords are masked where the URL text is put into a message (and once more
//! over every error that leaves [`crate::load`]); a file that does not parse is never quoted,
//! and what the parser says is rebuilt in `file.rs` and then scrubbed of anything written
//! after a secret key.

use std::borrow::Cow;

use crate::error::{ConfigError, Origin};

/// Shown in place of a URL's password.
pub(crate) const MASK: &str = "***";

/// Shown in place of a value that must not be echoed.
pub(crate) const REDACTED: &str = "<redacted>";

/// Words that make a key's value a secret: `client_password`, and the `password` a user might
/// add to a `[[target]]` (rejected as an unknown key, but its value must not leak either).
const SECRET_WORDS: &[&str] = &["password", "passwd", "secret"];

/// Fragments shorter than this are not scrubbed from parser messages, which would otherwise
/// lose every `a` or `in`; the messages that quote file text are rebuilt instead.
const MIN_FRAGMENT: usize = 3;

/// Whether the value of this key (or key path, such as `target[0].password`) is a secret.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// One URL as written, valid or not (or `USER:PASSWORD@HOST` without a scheme), with the
/// password replaced by `***`: `postgres://u:***@host/db`.
pub(crate) fn url(text: &str) -> Cow<'_, str> {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    // In a URL that parses, the user info ends the authority, which ends at the first `/`, `?`
    // or `#`. One that does not parse may have any of them, or a space, in its password, so
    // everything up to the last `@` counts.
    let scope = if ::url::Url::parse(text).is_ok() {
        &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())]
    } else {
        rest
    };
    let Some(at) = scope.rfind('@') else {
        return Cow::Borrowed(text);
    };
    let Some(colon) = scope[..at].find(':') else {
        return Cow::Borrowed(text);
    };
    Cow::Owned(format!(
        "{}{MASK}{}",
        &text[..start + colon + 1],
        &text[start + at..]
    ))
}

/// Free text with the password of every `scheme://user:password@...` in it masked. A URL is
/// taken to end at white space or a quote.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .len();
        let end = rest[i + 3..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(rest.len(), |e| i + 3 + e);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// What a file has written after each secret key, as written: the value on the key's line,
/// its words, and, when the value does not end on that line (a multi-line or unterminated
/// string, a list, a YAML block), every word of every line after it. A parser message that
/// quotes any of these is scrubbed with [`without`].
pub(crate) fn secret_fragments(file_text: &str) -> Vec<String> {
    let lines: Vec<&str> = file_text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if s.chars().count() >= MIN_FRAGMENT && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    let mut rest_of_file_from = None;
    for (i, line) in lines.iter().enumerate() {
        // ASCII lower-casing keeps byte offsets, so `end` indexes `line` too.
        let lower = line.to_ascii_lowercase();
        let Some(end) = SECRET_WORDS
            .iter()
            .filter_map(|w| lower.find(w).map(|p| p + w.len()))
            .min()
        else {
            continue;
        };
        let raw = line[end..]
            .trim_start_matches(|c: char| c.is_alphanumeric() || matches!(c, '_' | '-'))
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\''))
            .trim_start_matches([':', '='])
            .trim();
        let value = raw
            .trim_start_matches(['"', '\''])
            .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ','));
        push(value);
        for word in words(value) {
            push(word);
        }
        if !ends_on_its_line(raw) && rest_of_file_from.is_none() {
            rest_of_file_from = Some(i + 1);
        }
    }
    if let Some(from) = rest_of_file_from {
        for line in &lines[from.min(lines.len())..] {
            push(line);
            for word in words(line) {
                push(word);
            }
        }
    }
    // Longest first, so a value is replaced whole rather than word by word.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | '[' | ']'))
        .filter(|w| !w.is_empty())
}

/// Whether a value as written after `=` or `:` is complete on its line: not empty (YAML puts
/// nested values below), not a block, list or table opener, and with its quotes closed.
fn ends_on_its_line(raw: &str) -> bool {
    let Some(first) = raw.chars().next() else {
        return false;
    };
    match first {
        '|' | '>' | '[' | '{' => false,
        '"' | '\'' => {
            let unescaped = raw.replace("\\\\", "").replace(&format!("\\{first}"), "");
            unescaped.matches(first).count() % 2 == 0
        }
        _ => true,
    }
}

/// `s` with every fragment (longest match first, in one pass) replaced by `<redacted>`.
pub(crate) fn without(s: &str, fragments: &[String]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'outer: while let Some(c) = rest.chars().next() {
        for f in fragments {
            if rest.starts_with(f.as_str()) {
                out.push_str(REDACTED);
                rest = &rest[f.len()..];
                continue 'outer;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The last line of defence, over every error the crate returns: URL passwords masked in
/// every part of the message, and the value of a secret key never shown.
pub(crate) fn error(e: ConfigError) -> ConfigError {
    fn t(s: String) -> String {
        match text(&s) {
            Cow::Borrowed(_) => s,
            Cow::Owned(o) => o,
        }
    }
    fn o(origin: Origin) -> Origin {
        Origin::text(t(origin.as_str().to_owned()))
    }
    let value = |key: &str, value: String| {
        if is_secret_key(key) {
            REDACTED.to_owned()
        } else if value.contains("://") {
            // The whole value is one URL (or a list of them), valid or not: mask up to its
            // last `@`, even past a space.
            url(&value).into_owned()
        } else {
            value
        }
    };
    match e {
        ConfigError::Invalid {
            key,
            value: v,
            expected,
            origin,
        } => ConfigError::Invalid {
            value: value(&key, v),
            key: t(key),
            expected: t(expected),
            origin: o(origin),
        },
        ConfigError::Conflict {
            key,
            value: v,
            reason,
            origin,
        } => ConfigError::Conflict {
            value: value(&key, v),
            key: t(key),
            reason: t(reason),
            origin: o(origin),
        },
        ConfigError::UnknownKey {
            key,
            expected,
            origin,
        } => ConfigError::UnknownKey {
            key: t(key),
            expected: t(expected),
            origin: o(origin),
        },
        ConfigError::Missing {
            key,
            expected,
            origin,
        } => ConfigError::Missing {
            key: t(key),
            expected: t(expected),
            origin: o(origin),
        },
        ConfigError::File { path, reason } => ConfigError::File {
            path,
            reason: t(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_valid_or_not() {
        for (text, want) in [
            ("postgres://u:hunter2@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:hunter2@bad host/db",
                "postgres://u:***@bad host/db",
            ),
            (
                "postgres://u:hunter2@h:99999/db",
                "postgres://u:***@h:99999/db",
            ),
            ("postgres://u:hunter2/x@h/db", "postgres://u:***@h/db"),
            ("postgres://u:hun ter2@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@ss@h?x=1", "postgres://u:***@h?x=1"),
            ("u:hunter2@h.example.com/db", "u:***@h.example.com/db"),
            ("mysql://u:hunter2@h", "mysql://u:***@h"),
            // Nothing to mask.
            ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
            (
                "postgres://h:5432/db?user=a@b",
                "postgres://h:5432/db?user=a@b",
            ),
            (
                "postgres://h.example.com:99999",
                "postgres://h.example.com:99999",
            ),
            ("orders", "orders"),
        ] {
            assert_eq!(url(text), want, "{text}");
        }
    }

    #[test]
    fn urls_in_text_are_masked() {
        assert_eq!(
            text("in TARGET postgres://u:hunter2@h/db from environment variable X"),
            "in TARGET postgres://u:***@h/db from environment variable X"
        );
        assert_eq!(
            text("target \"x+y://a:hunter2@h\" and `p://b:c@d`"),
            "target \"x+y://a:***@h\" and `p://b:***@d`"
        );
        assert_eq!(
            text("postgres://[USER@]HOST[:PORT][/DATABASE]"),
            "postgres://[USER@]HOST[:PORT][/DATABASE]"
        );
    }

    #[test]
    fn fragments_cover_broken_values() {
        let f = secret_fragments("a = 1\nclient_password = \"hunter2\nmax_connections = 5\n");
        assert!(f.iter().any(|s| s == "hunter2"), "{f:?}");
        assert!(f.iter().any(|s| s == "max_connections"), "{f:?}");
        let f = secret_fragments("client_password = \"hunter2\"\nmax_connections = 5\n");
        assert!(f.iter().any(|s| s == "hunter2"), "{f:?}");
        assert!(!f.iter().any(|s| s == "max_connections"), "{f:?}");
        let f = secret_fragments("{\"client_password\": \"hunter2\", \"a\": 1}");
        assert!(f.iter().any(|s| s.starts_with("hunter2")), "{f:?}");
        let f = secret_fragments("client_password: |\n  hunter2\n");
        assert!(f.iter().any(|s| s == "hunter2"), "{f:?}");
    }

    #[test]
    fn without_replaces_in_one_pass() {
        let f = vec!["hunter2".to_owned(), "red".to_owned()];
        assert_eq!(
            without("string \"hunter2\" is red", &f),
            "string \"<redacted>\" is <redacted>"
        );
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("client_password"));
        assert!(is_secret_key("target[0].Password"));
        assert!(!is_secret_key("max_connections"));
    }
}
