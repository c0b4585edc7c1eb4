//! Every validation error: one row each, asserting the key it names and the message.

mod cases_secrets;
mod cases_settings;
mod cases_targets;
#[path = "../common/mod.rs"]
mod common;

use common::{cli, env, Dir};
use rds_iam_config::load;

pub const T: &str = "postgres://db.example.com";
pub const T2: &str = "postgres://db2.example.com";

pub struct Case {
    pub argv: &'static [&'static str],
    pub env: &'static [(&'static str, &'static str)],
    /// Written to a temp file and passed as `--config FILE` (placeholder `{file}` not needed).
    pub file: Option<(&'static str, &'static str)>,
    pub key: &'static str,
    pub contains: &'static [&'static str],
}

pub const fn case(
    argv: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    key: &'static str,
    contains: &'static [&'static str],
) -> Case {
    Case {
        argv,
        env,
        file: None,
        key,
        contains,
    }
}

pub const fn file_case(
    name: &'static str,
    text: &'static str,
    argv: &'static [&'static str],
    key: &'static str,
    contains: &'static [&'static str],
) -> Case {
    Case {
        argv,
        env: &[],
        file: Some((name, text)),
        key,
        contains,
    }
}

/// Loads one case, checks the key and message, and that no password shows.
fn run(c: &Case) {
    let dir = Dir::new();
    let mut argv: Vec<String> = Vec::new();
    if let Some((name, text)) = c.file {
        argv.push("--config".into());
        argv.push(dir.write(name, text).to_str().unwrap().to_owned());
    }
    argv.extend(c.argv.iter().map(|s| (*s).to_owned()));
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let err = match load(&cli(&argv_ref), &env(c.env)) {
        Ok(s) => panic!("{argv:?} {:?}: expected an error, got {s:#?}", c.env),
        Err(e) => e,
    };
    let msg = err.to_string();
    println!("{msg}");
    assert_eq!(err.key(), c.key, "{argv:?} {:?}: {msg}", c.env);
    assert!(msg.contains(c.key), "message must name the key: {msg}");
    for want in c.contains {
        assert!(msg.contains(want), "{argv:?}: {msg:?} lacks {want:?}");
    }
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    let debug = format!("{err:?}");
    assert!(!debug.contains("hunter2"), "password leaked: {debug}");
}

#[test]
fn every_error_names_its_key() {
    for c in cases_settings::CASES.iter().chain(cases_targets::CASES) {
        run(c);
    }
}

/// Regression: a config file that did not parse was quoted in the message (TOML's excerpt of
/// the line, YAML's and JSON's non-table value), and a TARGET URL that did not parse was
/// echoed whole, passwords included.
#[test]
fn no_error_shows_a_password() {
    for c in cases_secrets::CASES {
        run(c);
    }
}

/// Regression: an unparsable `log_level` was accepted here and the proxy's logging quietly fell
/// back to `info`; it must fail like any other invalid setting, whichever layer sets it.
#[test]
fn log_level_must_be_a_filter_the_logger_accepts() {
    for bad in ["info,foo=notalevel", "foo=bogus", "==", "=info", "foo=6"] {
        let flag = format!("--log-level={bad}");
        for (argv, vars, origin) in [
            (
                vec![flag.as_str(), T],
                vec![],
                "from --log-level".to_owned(),
            ),
            (
                vec![T],
                vec![("RDS_IAM_PROXY_LOG_LEVEL", bad)],
                "from environment variable RDS_IAM_PROXY_LOG_LEVEL".to_owned(),
            ),
        ] {
            let err = match load(&cli(&argv), &env(&vars)) {
                Ok(s) => panic!("{bad:?}: accepted as {:?}", s.log_level),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert_eq!(err.key(), "log_level", "{msg}");
            let want = format!("invalid value {bad:?} for log_level: expected a RUST_LOG-style");
            assert!(msg.contains(&want), "{msg}");
            assert!(msg.contains(&origin), "{msg}");
        }
    }
    for good in [
        "info",
        "debug",
        "off",
        "rds_iam_proxy=trace,warn",
        "WARN",
        "3",
    ] {
        let flag = format!("--log-level={good}");
        let s = load(&cli(&[&flag, T]), &env(&[])).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        assert_eq!(s.log_level, good);
    }
}
