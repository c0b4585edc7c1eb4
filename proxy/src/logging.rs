use rds_iam_config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Logs go to stderr, one line per event. `filter` is a RUST_LOG-style directive.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // The `target` key is ours (the database target's name), not the module path.
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
