//! Validation errors of unknown keys, TARGET URLs and config files.

use super::{case, file_case, Case, T};

pub const CASES: &[Case] = &[
    // Unknown keys.
    file_case(
        "c.toml",
        "foo = 1",
        &[T],
        "foo",
        &["unknown key \"foo\"", "c.toml", "max_connections"],
    ),
    file_case(
        "c.toml",
        "config = \"x.toml\"",
        &[T],
        "config",
        &["unknown key \"config\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nsslmode = \"require\"",
        &[],
        "sslmode",
        &["unknown key \"sslmode\"", "target[0]", "role_arn"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_FOO", "1")],
        "RDS_IAM_PROXY_FOO",
        &["RDS_IAM_PROXY_MAX_CONNECTIONS"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_TARGET", "x")],
        "RDS_IAM_PROXY_TARGET",
        &["RDS_IAM_PROXY_TARGETS"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_max_connections", "1")],
        "RDS_IAM_PROXY_max_connections",
        &["unknown"],
    ),
    case(
        &["postgres://h.example.com?sslmode=require"],
        &[],
        "sslmode",
        &["unknown key \"sslmode\"", "ca_file"],
    ),
    // TARGET URLs.
    case(
        &["postgres://u:hunter2@h.example.com"],
        &[],
        "TARGET",
        &["must not contain a password"],
    ),
    case(
        &["mysql://h.example.com"],
        &[],
        "TARGET",
        &["\"mysql://h.example.com\"", "postgres://"],
    ),
    case(&["postgres:///db"], &[], "TARGET", &["no host"]),
    case(
        &["postgres://h.example.com:99999"],
        &[],
        "TARGET",
        &["\"postgres://h.example.com:99999\""],
    ),
    case(&["postgres://h.example.com:0"], &[], "port", &["\"0\""]),
    case(
        &["postgres://h.example.com/a/b"],
        &[],
        "TARGET",
        &["single database name"],
    ),
    case(
        &["postgres://u@h.example.com?user=v"],
        &[],
        "user",
        &["more than once"],
    ),
    case(
        &["postgres://h.example.com?listen=nope"],
        &[],
        "listen",
        &["\"nope\"", "unix:DIR", "in TARGET"],
    ),
    case(
        &["postgres://h.example.com?listen=unix:"],
        &[],
        "listen",
        &["\"unix:\""],
    ),
    case(
        &["orders"],
        &[],
        "TARGET",
        &["\"orders\"", "no config file given"],
    ),
    case(
        &[],
        &[],
        "target",
        &["missing target", "at least one TARGET"],
    ),
    // Files.
    file_case(
        "c.toml",
        "[[target]]\nname = \"a\"",
        &[],
        "host",
        &["missing host", "[[target]] \"a\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nport = 70000",
        &[],
        "port",
        &["\"70000\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nlisten = []",
        &[],
        "listen",
        &["\"[]\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nname = \"a\"\nhost = \"h\"",
        &["b"],
        "TARGET",
        &["\"b\"", "known: a"],
    ),
    file_case(
        "c.yaml",
        "target:\n  host: h\n",
        &[],
        "target",
        &["list of [[target]] tables"],
    ),
    file_case(
        "c.toml",
        "client_password = \"\"",
        &[T],
        "client_password",
        &["<redacted>"],
    ),
    file_case(
        "c.toml",
        "max_connections = [",
        &[T],
        "config",
        &["cannot read config file"],
    ),
    file_case(
        "c.json",
        "{\"max_connections\": }",
        &[T],
        "config",
        &["cannot read config file"],
    ),
    file_case(
        "c.ini",
        "max_connections = 1",
        &[T],
        "config",
        &["c.ini\"", ".toml, .yaml, .yml or .json"],
    ),
    case(
        &["--config=/nonexistent/c.toml", T],
        &[],
        "config",
        &["/nonexistent/c.toml"],
    ),
];
