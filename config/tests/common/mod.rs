//! Helpers shared by the integration tests: real clap parsing, an injected environment, and
//! config files in a temporary directory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use rds_iam_config::{load, ConfigError, RunArgs, Settings};

#[derive(Parser, Debug)]
#[command(name = "rds-iam-proxy")]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// Parses a command line the way the proxy binary does.
pub fn cli(argv: &[&str]) -> RunArgs {
    let mut full = vec!["rds-iam-proxy"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full)
        .unwrap_or_else(|e| panic!("argv {argv:?}: {e}"))
        .run
}

pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A temporary directory that holds config files for one test.
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("tempdir"))
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).expect("write config");
        path
    }
}

pub fn ok(argv: &[&str], env_pairs: &[(&str, &str)]) -> Settings {
    load(&cli(argv), &env(env_pairs)).unwrap_or_else(|e| panic!("argv {argv:?}: {e}"))
}

pub fn err(argv: &[&str], env_pairs: &[(&str, &str)]) -> ConfigError {
    match load(&cli(argv), &env(env_pairs)) {
        Ok(s) => panic!("argv {argv:?} env {env_pairs:?} loaded: {s:#?}"),
        Err(e) => e,
    }
}
