//! A password in a config file or a URL never appears in an error message (the runner checks
//! every case, these included, for `hunter2` in both `Display` and `Debug`). Each row names
//! what the message still says: file, format, line and column, key, what was expected.

use super::{case, file_case, Case, T};

pub const CASES: &[Case] = &[
    // A URL or credentials in a [[target]] host: refused, the part before `@` not shown.
    file_case(
        "c.toml",
        "[[target]]\nhost = \"postgres://u:hunter2@db.example.com\"\n",
        &[],
        "host",
        &["…@db.example.com", "DNS name or IP address only"],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"u:hunter2@db.example.com\"\n",
        &[],
        "host",
        &["…@db.example.com"],
    ),
    // TOML that does not parse: the parser's excerpt of the line is never shown.
    file_case(
        "c.toml",
        "max_connections = 1\nclient_password = \"hunter2\nlog_level = \"info\"\n",
        &[T],
        "config",
        &[
            "c.toml",
            "TOML error at line 2, column 27 (after key client_password)",
            "invalid basic string",
        ],
    ),
    file_case(
        "c.toml",
        "client_password = 'hunter2\n",
        &[T],
        "config",
        &[
            "TOML error at line 1, column 27 (after key client_password)",
            "literal string",
        ],
    ),
    file_case(
        "c.toml",
        "client_password = hunter2\n",
        &[T],
        "config",
        &[
            "TOML error at line 1, column 19 (after key client_password)",
            "must be quoted",
        ],
    ),
    file_case(
        "c.toml",
        "client_password = \"hunter2\" trailing\n",
        &[T],
        "config",
        &[
            "TOML error at line 1, column 29 (after key client_password)",
            "expected newline",
        ],
    ),
    // An unterminated multi-line string: the error points past the password's lines.
    file_case(
        "c.toml",
        "client_password = \"\"\"hunter2\nhunter2 continued\n",
        &[T],
        "config",
        &[
            "TOML error at line 2, column 19 (after key client_password)",
            "multi-line",
        ],
    ),
    // The error is on a line below the key, which holds the password alone.
    file_case(
        "c.toml",
        "client_password = [\n  \"a\",\n  hunter2,\n]\n",
        &[T],
        "config",
        &["TOML error at line 3, column 3 (after key client_password)"],
    ),
    // TOML that parses, with a value of the wrong type.
    file_case(
        "c.toml",
        "client_password = [\"hunter2\"]",
        &[T],
        "client_password",
        &["<redacted>", "a non-empty string", "c.toml"],
    ),
    file_case(
        "c.toml",
        "client_password = { value = \"hunter2\" }",
        &[T],
        "client_password",
        &["invalid value \"<redacted>\" for client_password", "c.toml"],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\npassword = \"hunter2\"",
        &[],
        "password",
        &["unknown key \"password\"", "target[0]"],
    ),
    file_case(
        "c.toml",
        "connect_to = \"postgres://u:hunter2@h.example.com:5432\"",
        &[T],
        "connect_to",
        &[
            "\"postgres://u:***@h.example.com:5432\"",
            "HOST:PORT",
            "c.toml",
        ],
    ),
    file_case(
        "c.toml",
        "target = \"postgres://u:hunter2@h.example.com\"",
        &[],
        "target",
        &[
            "postgres://u:***@h.example.com",
            "list of [[target]] tables",
        ],
    ),
    // YAML.
    file_case(
        "c.yaml",
        "client_password hunter2\n",
        &[T],
        "config",
        &["c.yaml", "YAML error", "top level, found a string"],
    ),
    file_case(
        "c.yaml",
        "client_password: \"hunter2\nmax_connections: 1\n",
        &[T],
        "config",
        &[
            "YAML error at line 1, column 18 (after key client_password)",
            "quoted scalar",
        ],
    ),
    file_case(
        "c.yaml",
        "client_password: [hunter2\n",
        &[T],
        "config",
        &[
            "YAML error at line 2, column 1 (after key client_password)",
            "flow sequence",
        ],
    ),
    file_case(
        "c.yaml",
        "client_password: hunter2\n  max_connections: 1\n",
        &[T],
        "config",
        &[
            "YAML error at line 2, column 18 (after key client_password)",
            "mapping values",
        ],
    ),
    file_case(
        "c.yaml",
        "client_password: a\nclient_password: b\n",
        &[T],
        "config",
        &[
            "YAML error at line 2",
            "duplicated key client_password in mapping",
        ],
    ),
    // A key that is a list, holding what may be a password.
    file_case(
        "c.yaml",
        "? [hunter2]\n: 1\n? [hunter2]\n: 2\n",
        &[T],
        "config",
        &["YAML error at line", "duplicated key in mapping"],
    ),
    file_case(
        "c.yml",
        "- hunter2\n",
        &[T],
        "config",
        &["c.yml", "top level, found a sequence"],
    ),
    // JSON.
    file_case(
        "c.json",
        "\"hunter2\"",
        &[T],
        "config",
        &["c.json", "JSON error", "top level, found a string"],
    ),
    file_case(
        "c.json",
        "{\"client_password\": \"hunter2}",
        &[T],
        "config",
        &[
            "JSON error at line 1, column 29 (after key client_password)",
            "EOF",
        ],
    ),
    file_case(
        "c.json",
        "{\"client_password\": hunter2}",
        &[T],
        "config",
        &[
            "JSON error at line 1, column 21 (after key client_password)",
            "expected value",
        ],
    ),
    file_case(
        "c.json",
        "{\"client_password\": 1.5}",
        &[T],
        "client_password",
        &["<redacted>"],
    ),
    // TARGET URLs that do not parse: the password reads `***`.
    case(
        &["postgres://u:hunter2@bad host/db"],
        &[],
        "TARGET",
        &[
            "\"postgres://u:***@bad host/db\"",
            "invalid domain character",
        ],
    ),
    case(
        &["postgres://u:hunter2@h.example.com:99999/db"],
        &[],
        "TARGET",
        &[
            "\"postgres://u:***@h.example.com:99999/db\"",
            "invalid port number",
        ],
    ),
    case(
        &["postgres://u:hunter2/x@h.example.com/db"],
        &[],
        "TARGET",
        &["\"postgres://u:***@h.example.com/db\""],
    ),
    case(
        &["mysql://u:hunter2@h.example.com"],
        &[],
        "TARGET",
        &["\"mysql://u:***@h.example.com\"", "postgres://"],
    ),
    case(
        &["postgres://u:hunter2@bad host/db?sslmode=require"],
        &[],
        "TARGET",
        &["\"postgres://u:***@bad host/db?sslmode=require\""],
    ),
    case(
        &[],
        &[(
            "RDS_IAM_PROXY_TARGETS",
            "postgres://u:hunter2@h.example.com:70000",
        )],
        "TARGET",
        &[
            "\"postgres://u:***@h.example.com:70000\"",
            "RDS_IAM_PROXY_TARGETS",
        ],
    ),
    // A URL that parses, with a password: refused, and shown without it.
    case(
        &["postgres://u:hunter2@h.example.com?sslmode=require"],
        &[],
        "TARGET",
        &["\"postgres://u@h.example.com?sslmode=require\"", "password"],
    ),
    case(
        &["postgres://u:hunter2@h.example.com?listen=nope"],
        &[],
        "TARGET",
        &["must not contain a password"],
    ),
    // No scheme: taken for a target name, and masked all the same.
    case(
        &["u:hunter2@h.example.com"],
        &[],
        "TARGET",
        &["\"u:***@h.example.com\"", "no config file given"],
    ),
    // A URL in another setting.
    case(
        &["--connect-to=postgres://u:hunter2@h.example.com:5432", T],
        &[],
        "connect_to",
        &[
            "\"postgres://u:***@h.example.com:5432\"",
            "from --connect-to",
        ],
    ),
];
