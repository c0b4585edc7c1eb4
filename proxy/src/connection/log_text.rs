//! Text a client chose (user and database names), as it may be logged: control characters and
//! the invisible reordering ones escaped, so a name cannot forge a log line or send terminal
//! escapes to whoever reads the log in text format.

use std::fmt;

pub(crate) struct LogText<'a>(pub &'a str);

impl fmt::Display for LogText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if needs_escape(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Controls (newline, ESC, DEL, C1), and the bidirectional and zero-width format characters
/// that change how the rest of a line reads.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_unchanged() {
        for name in ["iam_user", "app-db", "élève", "用户", "a b@c.d"] {
            assert_eq!(LogText(name).to_string(), name);
        }
    }

    #[test]
    fn controls_and_reordering_characters_are_escaped() {
        assert_eq!(
            LogText("evil\nINFO forged line\r\x1b[31m\u{202e}x\\").to_string(),
            r"evil\nINFO forged line\r\u{1b}[31m\u{202e}x\\"
        );
    }
}
