//! The generated items agree with the table: observed through loading, not by re-listing keys.

use std::collections::HashMap;

use clap::{CommandFactory, Parser};

use super::*;
use crate::{load, ConfigError};

const T: &str = "postgres://db.example.com";

/// The proxy's command line, reduced to what this crate defines.
#[derive(Parser, Debug)]
#[command(name = "rds-iam-proxy")]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn parse(argv: &[&str]) -> Result<RunArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("rds-iam-proxy").chain(argv.iter().copied())).map(|c| c.run)
}

fn env(pairs: &[(String, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect()
}

fn load_env(pairs: &[(String, &str)]) -> Result<Settings, ConfigError> {
    load(&parse(&[T]).unwrap(), &env(pairs))
}

#[test]
fn keys_flags_and_reference_agree() {
    let reference: Vec<&str> = settings_reference().iter().map(|s| s.key).collect();
    assert_eq!(
        top_level_keys(),
        [reference.as_slice(), &["target"]].concat()
    );

    // The flags clap knows, in `--help` order, are the table's flags after `--config`.
    let clap_flags: Vec<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut table_flags = vec!["--config".to_owned()];
    table_flags.extend(settings_reference().iter().filter_map(SettingDoc::flag));
    assert_eq!(clap_flags, table_flags);

    for s in settings_reference() {
        assert!(!s.doc.is_empty() && !s.default.is_empty(), "{}", s.key);
        match (s.flag, s.flag()) {
            (FlagKind::NoFlag, None) => {
                let arg = format!("--{}=x", s.key.replace('_', "-"));
                assert!(parse(&[&arg, T]).is_err(), "{arg} must not be a flag");
            }
            (FlagKind::Bool, Some(flag)) => {
                // Alone it means true and does not swallow the TARGET after it.
                let args = parse(&[&flag, T]).unwrap();
                assert_eq!(args.targets, [T], "{flag}");
            }
            (FlagKind::Value(_), Some(_)) => {}
            other => panic!("{}: {other:?}", s.key),
        }
    }
}

/// Each key, set to a blank value in one layer, must reach its own parser: either that
/// parser's error naming the key and the layer, or settings that differ from the defaults.
fn assert_read(key: &str, result: Result<Settings, ConfigError>, origin: &str) {
    match result {
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(e.key(), key, "{msg}");
            assert!(msg.contains(origin), "{msg:?} lacks {origin:?}");
        }
        Ok(s) => assert_ne!(
            s,
            load_env(&[]).unwrap(),
            "{key} from {origin} had no effect"
        ),
    }
}

#[test]
fn every_key_is_read_from_a_file_a_variable_and_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    for s in settings_reference() {
        let path = dir.path().join(format!("{}.toml", s.key));
        std::fs::write(&path, format!("{} = \" \"\n", s.key)).unwrap();
        let args = RunArgs {
            config: Some(path.clone()),
            ..parse(&[T]).unwrap()
        };
        let file = load(&args, &HashMap::new());
        assert_read(s.key, file, &path.display().to_string());

        let var = s.env();
        assert_eq!(var, format!("RDS_IAM_PROXY_{}", s.key.to_uppercase()));
        assert_read(s.key, load_env(&[(var.clone(), " ")]), &var);

        if let Some(flag) = s.flag() {
            let args = parse(&[&format!("{flag}= "), T]).unwrap();
            assert_read(s.key, load(&args, &HashMap::new()), &format!("from {flag}"));
        }
    }
}

#[test]
fn documented_defaults_are_the_defaults() {
    let base = load_env(&[]).unwrap();
    // Descriptions such as "none" or "the user the client sends" are not values to set.
    for s in settings_reference().iter() {
        if s.default == "none" || s.default.contains(' ') {
            continue;
        }
        let set = load_env(&[(s.env(), s.default)]);
        let set = set.unwrap_or_else(|e| panic!("{} = {:?}: {e}", s.key, s.default));
        assert_eq!(set, base, "{} = {:?}", s.key, s.default);
    }
}

#[test]
fn restart_only_changes_names_exactly_the_changed_restart_keys() {
    // A value other than the default for every restart-only key.
    let changes = [
        ("admin_listen", "127.0.0.1:9801"),
        ("quitquitquit", "true"),
        ("max_connections", "7"),
        ("startup_timeout", "3s"),
        ("min_sigterm_delay", "1s"),
        ("max_sigterm_delay", "2m"),
        ("allow_core_dumps", "true"),
        ("exit_zero_on_sigterm", "true"),
        ("log_format", "json"),
        ("log_level", "debug"),
    ];
    let restart: Vec<&str> = settings_reference()
        .iter()
        .filter(|s| s.restart)
        .map(|s| s.key)
        .collect();
    let changed: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        changed, restart,
        "give each restart key a changed value here"
    );

    let base = load_env(&[]).unwrap();
    assert!(restart_only_changes(&base, &base).is_empty());
    for (key, value) in changes {
        let new = load_env(&[(env_var(key), value)]).unwrap();
        assert_eq!(restart_only_changes(&base, &new), [key]);
        assert_eq!(restart_only_changes(&new, &base), [key]);
    }
    let all: Vec<(String, &str)> = changes.iter().map(|(k, v)| (env_var(k), *v)).collect();
    assert_eq!(
        restart_only_changes(&base, &load_env(&all).unwrap()),
        restart
    );

    // Settings SIGHUP applies are not reported.
    let live = [
        ("listen", "127.0.0.1:6000"),
        ("region", "eu-west-1"),
        ("max_connect_rate", "5"),
        ("connect_timeout", "5s"),
        ("unix_socket_mode", "0770"),
        ("client_tls", "self-signed"),
    ];
    let live: Vec<(String, &str)> = live.iter().map(|(k, v)| (env_var(k), *v)).collect();
    let new = load_env(&live).unwrap();
    assert_ne!(new, base);
    assert!(restart_only_changes(&base, &new).is_empty());
}
