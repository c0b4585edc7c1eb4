//! Readable timestamps for logs and error messages.

use aws_smithy_types::date_time::{DateTime, Format};
use std::time::SystemTime;

/// `2024-02-29T23:59:59Z` (whole seconds).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = DateTime::from(t).secs();
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| format!("unix:{secs}"))
}
