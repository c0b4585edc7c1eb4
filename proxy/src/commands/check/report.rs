//! How `check` prints: one line per stage, and for a failure the likely causes, each with
//! the command or SQL that fixes it.

use std::io::Write;

/// One possible reason for a failure and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub what: String,
    /// Commands or SQL to run, one per line; may be empty when there is nothing to type.
    pub fix: Vec<String>,
}

impl Cause {
    pub fn new(what: impl Into<String>, fix: impl IntoIterator<Item = String>) -> Self {
        Cause {
            what: what.into(),
            fix: fix.into_iter().collect(),
        }
    }
}

/// The stage that stopped the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: &'static str,
    pub summary: String,
    /// Most likely first.
    pub causes: Vec<Cause>,
    /// 1 for a failed stage, 2 for bad settings.
    pub exit_code: u8,
}

impl Failure {
    pub fn new(stage: &'static str, summary: impl Into<String>, causes: Vec<Cause>) -> Self {
        Failure {
            stage,
            summary: summary.into(),
            causes,
            exit_code: 1,
        }
    }

    pub fn config(summary: impl Into<String>, causes: Vec<Cause>) -> Self {
        Failure {
            exit_code: 2,
            ..Failure::new("config", summary, causes)
        }
    }
}

pub struct Report<'a> {
    out: &'a mut dyn Write,
}

impl<'a> Report<'a> {
    pub fn new(out: &'a mut dyn Write) -> Self {
        Report { out }
    }

    pub fn ok(&mut self, stage: &str, detail: &str) {
        self.line(&format!("[ok] {stage}: {detail}"));
    }

    pub fn warn(&mut self, stage: &str, detail: &str) {
        self.line(&format!("[warn] {stage}: {detail}"));
    }

    pub fn note(&mut self, text: &str) {
        self.line(text);
    }

    pub fn fail(&mut self, failure: &Failure) {
        self.line(&format!("[FAIL] {}: {}", failure.stage, failure.summary));
        if failure.causes.is_empty() {
            return;
        }
        self.line("  likely causes, most likely first, and the fix for each:");
        for (i, cause) in failure.causes.iter().enumerate() {
            self.line(&format!("  {}. {}", i + 1, cause.what));
            for fix in &cause.fix {
                self.line(&format!("       {fix}"));
            }
        }
    }

    fn line(&mut self, text: &str) {
        // Flushed per line so a stage that hangs still shows how far the walk got.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}
