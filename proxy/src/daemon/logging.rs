//! Logs to stderr (text or JSON), with the libraries whose TRACE events hold secrets capped.

use rds_iam_config::LogFormat;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Libraries whose TRACE events carry credentials: aws-sigv4 logs the canonical request,
/// session token included. They are capped at DEBUG whatever `--log-level` asks for.
const SECRET_BEARING_TARGETS: &[&str] = &["aws_sigv4"];

fn may_hold_secrets(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::TRACE
        && SECRET_BEARING_TARGETS.iter().any(|t| {
            meta.target() == *t
                || meta
                    .target()
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

/// Logs go to stderr, one line per event. `filter` is a RUST_LOG-style directive.
pub(crate) fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // The `target` key is ours (the database target's name), not the module path.
        .with_target(false);
    let layer = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.with_ansi(false).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer.with_filter(filter_fn(|meta| !may_hold_secrets(meta))))
        .try_init();
}
