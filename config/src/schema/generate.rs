//! The generator behind the table in `schema.rs`. One invocation emits every item that lists
//! the top-level settings: [`RunArgs`](crate::RunArgs) and its `overlay`, `RawSettings`,
//! `top_level_keys`, `restart_only_changes` and the reference table.
//!
//! Rows are normalised by the `@*` helper rules. `RunArgs` has to be built by an accumulator
//! (`@run_args`) because a row without a flag must leave out its field, and a repetition
//! cannot skip an item; everything else is one repetition over the rows.

macro_rules! settings {
    ($(
        $key:ident {
            doc: $doc:literal,
            flag: $flag:tt,
            default: $default:literal $(($shown:ident))?,
            reload: $reload:ident $(($field:ident))?,
        }
    )*) => {
        settings!(@run_args [] $( $key $flag ($doc $default $($shown)?) )*);

        impl RunArgs {
            /// Puts every given flag on top of the file and environment layers.
            pub(crate) fn overlay(&self, layers: &mut Layers) {
                $( settings!(@overlay self layers $key $flag); )*
            }
        }

        /// Top-level keys of the config file, each also a variable `RDS_IAM_PROXY_<KEY>` and,
        /// unless the table says otherwise, a flag. Values are untyped here and parsed on
        /// resolution so that errors can name the key, value and origin.
        #[derive(Debug, Default, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawSettings {
            $(
                #[doc = concat!($doc, ". Default: ", $default, ".")]
                pub $key: Option<Val>,
            )*
            /// `[[target]]` tables; file only.
            pub target: Option<Vec<RawTarget>>,
        }

        /// Every top-level key, for "expected one of" lists.
        pub(crate) fn top_level_keys() -> &'static [&'static str] {
            &[$( stringify!($key), )* "target"]
        }

        /// Keys whose new value differs from the running one but only applies after a
        /// restart (the proxy reads them once at start-up), in table order.
        pub fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
            let mut keys = Vec::new();
            $( settings!(@differs keys old new $key $reload $(($field))?); )*
            keys
        }

        /// One entry per top-level setting, in the order of `--help`; `target` (the list of
        /// `[[target]]` tables) is not a scalar setting and is not listed.
        static REFERENCE: &[SettingDoc] = &[$(
            SettingDoc {
                key: stringify!($key),
                flag: settings!(@kind $flag),
                default: $default,
                doc: $doc,
                restart: settings!(@is_restart $reload $(($field))?),
            },
        )*];
    };

    // `RunArgs`: fields accumulate in `[...]`; rows without a flag add none.
    (@run_args [$($fields:tt)*]) => {
        /// Options of `rds-iam-proxy [OPTIONS] [TARGET]...` (also used by `check` and `policy`).
        /// Each has a config file key (`-` → `_`) and a variable `RDS_IAM_PROXY_<KEY>`.
        #[derive(clap::Args, Debug, Default, Clone, PartialEq, Eq)]
        pub struct RunArgs {
            /// postgres://[USER@]HOST[:PORT][/DATABASE][?KEY=VALUE&...] (postgresql:// too), or the name
            /// of a [[target]] in the config file [env: RDS_IAM_PROXY_TARGETS, space-separated]
            #[arg(value_name = "TARGET")]
            pub targets: Vec<String>,

            /// Config file: TOML, YAML or JSON by extension [env: RDS_IAM_PROXY_CONFIG]
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,

            $($fields)*
        }
    };
    (@run_args [$($fields:tt)*] $key:ident none $help:tt $($rest:tt)*) => {
        settings!(@run_args [$($fields)*] $($rest)*);
    };
    (@run_args [$($fields:tt)*] $key:ident bool ($($help:tt)*) $($rest:tt)*) => {
        settings!(@run_args [
            $($fields)*
            #[doc = settings!(@help $($help)*)]
            // `--flag` alone means true; `=` is required so a following TARGET is not taken
            // as the value.
            #[arg(
                long,
                value_name = "BOOL",
                num_args = 0..=1,
                require_equals = true,
                default_missing_value = "true",
                help = settings!(@help $($help)*)
            )]
            pub $key: Option<String>,
        ] $($rest)*);
    };
    (@run_args [$($fields:tt)*] $key:ident [$value_name:literal] ($($help:tt)*) $($rest:tt)*) => {
        settings!(@run_args [
            $($fields)*
            #[doc = settings!(@help $($help)*)]
            #[arg(
                long,
                value_name = $value_name,
                action = clap::ArgAction::Append,
                help = settings!(@help $($help)*)
            )]
            pub $key: Vec<String>,
        ] $($rest)*);
    };
    (@run_args [$($fields:tt)*] $key:ident $value_name:literal ($($help:tt)*) $($rest:tt)*) => {
        settings!(@run_args [
            $($fields)*
            #[doc = settings!(@help $($help)*)]
            #[arg(long, value_name = $value_name, help = settings!(@help $($help)*))]
            pub $key: Option<String>,
        ] $($rest)*);
    };

    // The `--help` line: the doc line, plus the default when the row says `(shown)`.
    (@help $doc:literal $default:literal shown) => {
        concat!($doc, " [default: ", $default, "]")
    };
    (@help $doc:literal $default:literal) => {
        $doc
    };

    (@overlay $args:ident $layers:ident $key:ident none) => {};
    (@overlay $args:ident $layers:ident $key:ident [$value_name:literal]) => {
        if !$args.$key.is_empty() {
            let items = $args.$key.iter().map(|v| Val::Str(v.clone())).collect();
            $layers.raw.$key = Some(Val::List(items));
            $layers
                .origins
                .insert(stringify!($key).to_owned(), Origin::flag(stringify!($key)));
        }
    };
    (@overlay $args:ident $layers:ident $key:ident $flag:tt) => {
        if let Some(v) = &$args.$key {
            $layers.raw.$key = Some(Val::Str(v.clone()));
            $layers
                .origins
                .insert(stringify!($key).to_owned(), Origin::flag(stringify!($key)));
        }
    };

    (@differs $keys:ident $old:ident $new:ident $key:ident live) => {};
    (@differs $keys:ident $old:ident $new:ident $key:ident restart($field:ident)) => {
        if $old.$field != $new.$field {
            $keys.push(stringify!($key));
        }
    };

    (@is_restart live) => {
        false
    };
    (@is_restart restart($field:ident)) => {
        true
    };

    (@kind none) => {
        FlagKind::NoFlag
    };
    (@kind bool) => {
        FlagKind::Bool
    };
    (@kind [$value_name:literal]) => {
        FlagKind::Value($value_name)
    };
    (@kind $value_name:literal) => {
        FlagKind::Value($value_name)
    };
}

pub(super) use settings;
