//! The client × feature matrix: results, the JSON lines the client programs print, and the
//! generated section of tests/clients/README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use serde_json::Value;

/// Features every client is checked for, in column order, with their column titles.
pub const FEATURES: &[(&str, &str)] = &[
    ("connect", "connect, no password"),
    ("simple_query", "simple query"),
    ("extended_query", "extended query"),
    ("prepared", "prepared stmt"),
    ("pipeline", "pipeline"),
    ("transaction_rollback", "tx rollback"),
    ("large_result", "50 MB result"),
    ("copy_in", "COPY in"),
    ("copy_out", "COPY out"),
    ("notify", "NOTIFY"),
    ("cancel", "cancel"),
    ("application_name", "application_name"),
    ("error_sqlstate", "error 22012"),
];

/// Rows of the matrix, in order (programs report under these names).
pub const CLIENTS: &[&str] = &[
    "psql",
    "psycopg (sync)",
    "psycopg (async)",
    "asyncpg",
    "pg8000",
    "pgjdbc",
    "node-postgres (pg)",
    "tokio-postgres",
    "sqlx",
];

/// Shared by the in-process Rust clients and psql (the other programs have their own copy).
pub const LARGE_ROWS: usize = 50_000;
pub const LARGE_WIDTH: usize = 1000;
pub const COPY_ROWS: usize = 10_000;
/// Bound of every wait in a feature check (a notification, a cancel, a running query).
pub const WAIT: Duration = Duration::from_secs(20);
/// Bound of one feature check as a whole.
const FEATURE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Gap,
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub client: String,
    pub feature: String,
    pub status: Status,
    pub detail: String,
}

/// What a feature check returns: `Ok(detail)`, or an error that is a failure unless it is
/// a [`Gap`].
pub type Check = anyhow::Result<String>;

/// The client has no such feature; the reason goes in the table.
#[derive(Debug)]
pub struct Gap(pub String);

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Gap {}

pub fn gap(reason: impl Into<String>) -> Check {
    Err(Gap(reason.into()).into())
}

#[derive(Default)]
pub struct Matrix {
    pub cells: Vec<Cell>,
    /// Client → version text.
    pub versions: BTreeMap<String, String>,
}

impl Matrix {
    pub fn push(&mut self, client: &str, feature: &str, status: Status, detail: impl Into<String>) {
        let cell = Cell {
            client: client.to_owned(),
            feature: feature.to_owned(),
            status,
            detail: detail.into(),
        };
        eprintln!(
            "[{:?}] {} / {}: {}",
            cell.status, cell.client, cell.feature, cell.detail
        );
        self.cells.push(cell);
    }

    /// Runs one feature check (bounded in time) and records its outcome.
    pub async fn check(&mut self, client: &str, feature: &str, f: impl Future<Output = Check>) {
        let outcome = match tokio::time::timeout(FEATURE_TIMEOUT, f).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("timed out after {FEATURE_TIMEOUT:?}")),
        };
        match outcome {
            Ok(detail) => self.push(client, feature, Status::Pass, detail),
            Err(e) => match e.downcast_ref::<Gap>() {
                Some(g) => self.push(client, feature, Status::Gap, g.0.clone()),
                None => self.push(client, feature, Status::Fail, format!("{e:#}")),
            },
        }
    }

    /// Every standard feature of `client` as a gap (its runtime is missing).
    pub fn all_gaps(&mut self, client: &str, reason: &str) {
        for (feature, _) in FEATURES {
            self.push(client, feature, Status::Gap, reason);
        }
    }

    /// Records the JSON lines a client program printed; standard features it did not report
    /// are failures that carry `context` (exit status, stderr).
    pub fn absorb_program(&mut self, clients: &[&str], stdout: &str, context: &str) {
        for line in stdout.lines().filter(|l| l.starts_with('{')) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let client = v["client"].as_str().unwrap_or("?").to_owned();
            if let Some(version) = v["version"].as_str() {
                self.versions.insert(client, version.to_owned());
                continue;
            }
            let feature = v["feature"].as_str().unwrap_or("?");
            let status = match (v["ok"].as_bool(), v["gap"].as_bool()) {
                (Some(true), _) => Status::Pass,
                (_, Some(true)) => Status::Gap,
                _ => Status::Fail,
            };
            let detail = v["detail"].as_str().unwrap_or("").to_owned();
            self.push(&client, feature, status, detail);
        }
        for client in clients {
            for (feature, _) in FEATURES {
                if self.get(client, feature).is_none() {
                    self.push(
                        client,
                        feature,
                        Status::Fail,
                        format!("no result from the program: {context}"),
                    );
                }
            }
        }
    }

    pub fn get(&self, client: &str, feature: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.client == client && c.feature == feature)
    }

    pub fn failures(&self) -> Vec<&Cell> {
        self.cells
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }

    fn is_standard(feature: &str) -> bool {
        FEATURES.iter().any(|(f, _)| *f == feature)
    }

    /// The generated Markdown: the matrix, its gap/failure notes, the other checks, details.
    pub fn render(&self, generated: &str, environment: &[(String, String)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Generated by `tests/tests/clients.rs` on {generated}. **pass**: checked and \
             correct; **gap**: the client has no such feature (reason in the notes); \
             **FAIL**: broken through the proxy.\n"
        );
        let mut header = "| client |".to_owned();
        let mut rule = "| --- |".to_owned();
        for (_, title) in FEATURES {
            let _ = write!(header, " {title} |");
            rule.push_str(" :---: |");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let mut notes: Vec<String> = Vec::new();
        for client in self.row_order() {
            let _ = write!(out, "| {client} |");
            for (feature, _) in FEATURES {
                let cell = self.get(&client, feature);
                let text = match cell {
                    Some(c) if c.status == Status::Pass => "pass".to_owned(),
                    Some(c) => {
                        notes.push(format!("{client}, {feature}: {}", one_line(&c.detail)));
                        let label = if c.status == Status::Gap {
                            "gap"
                        } else {
                            "**FAIL**"
                        };
                        format!("{label} [{}](#notes)", notes.len())
                    }
                    None => "—".to_owned(),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "\n### Notes\n");
            for (i, n) in notes.iter().enumerate() {
                let _ = writeln!(out, "{}. {}", i + 1, escape(n));
            }
        }

        let extras: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| !Self::is_standard(&c.feature))
            .collect();
        if !extras.is_empty() {
            let _ = writeln!(
                out,
                "\n### Other checks\n\n| client | check | result | detail |\n| --- | --- | --- | --- |"
            );
            for c in extras {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    c.client,
                    escape(&c.feature),
                    label(c.status),
                    escape(&one_line(&c.detail))
                );
            }
        }

        let _ = writeln!(out, "\n### Versions\n\n| client | version |\n| --- | --- |");
        for client in self.row_order() {
            if let Some(v) = self.versions.get(&client) {
                let _ = writeln!(out, "| {client} | {} |", escape(v));
            }
        }
        for (k, v) in environment {
            let _ = writeln!(out, "| {k} | {} |", escape(v));
        }

        let _ = writeln!(
            out,
            "\n<details><summary>Every check's detail</summary>\n\n| client | feature | result | detail |\n| --- | --- | --- | --- |"
        );
        for client in self.row_order() {
            for (feature, _) in FEATURES {
                if let Some(c) = self.get(&client, feature) {
                    let _ = writeln!(
                        out,
                        "| {client} | {feature} | {} | {} |",
                        label(c.status),
                        escape(&one_line(&c.detail))
                    );
                }
            }
        }
        let _ = writeln!(out, "\n</details>");
        out
    }

    /// Known clients first, in order, then any other client that reported.
    fn row_order(&self) -> Vec<String> {
        let mut rows: Vec<String> = CLIENTS
            .iter()
            .filter(|c| self.cells.iter().any(|cell| cell.client == **c))
            .map(|c| (*c).to_owned())
            .collect();
        for c in &self.cells {
            if !rows.contains(&c.client) && Self::is_standard(&c.feature) {
                rows.push(c.client.clone());
            }
        }
        rows
    }
}

fn label(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "**FAIL**",
        Status::Gap => "gap",
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 400 {
        format!("{}…", s.chars().take(400).collect::<String>())
    } else {
        s
    }
}

/// Markdown-table-safe text.
fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;")
}

/// Replaces the generated part of a README (between the markers) or writes a new file.
pub fn splice_readme(existing: Option<&str>, generated: &str) -> String {
    const BEGIN: &str = "<!-- matrix:begin (generated by tests/tests/clients.rs; do not edit) -->";
    const END: &str = "<!-- matrix:end -->";
    if let Some(text) = existing {
        if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
            if b < e {
                return format!("{}{BEGIN}\n{generated}{}", &text[..b], &text[e..]);
            }
        }
    }
    format!("# Client compatibility matrix\n\n{BEGIN}\n{generated}{END}\n")
}
