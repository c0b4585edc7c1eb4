//! One simple Query on a pooled connection (the reset query, `SET application_name`), read
//! up to its ReadyForQuery.

use bytes::BytesMut;
use rds_iam_protocol::{decode_data_row, BackendMessage};

use crate::upstream::{read_backend, send_query, UpstreamError, UpstreamStream};

/// Why a query on a pooled connection failed; the connection is then closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the server answered {code}: {message}")]
    Server { code: String, message: String },
    #[error("the server is not idle after the query (status {0:?})")]
    NotIdle(char),
    #[error("the server returned no row")]
    NoRow,
}

/// Runs `sql`; ParameterStatus messages the server sends on the way update `params`.
pub(crate) async fn run(
    stream: &mut UpstreamStream,
    sql: &str,
    params: &mut Vec<(String, String)>,
) -> Result<(), QueryError> {
    send_query(stream, sql).await?;
    let mut buf = BytesMut::with_capacity(512);
    let mut failed = None;
    loop {
        let (message, _) = read_backend(stream, &mut buf).await?;
        match message {
            BackendMessage::ErrorResponse(fields) => {
                failed.get_or_insert(QueryError::Server {
                    code: fields.code,
                    message: fields.message,
                });
            }
            BackendMessage::ParameterStatus { name, value } => set_param(params, name, value),
            BackendMessage::ReadyForQuery { status } => {
                return match (failed, status) {
                    (Some(e), _) => Err(e),
                    (None, b'I') if buf.is_empty() => Ok(()),
                    (None, s) => Err(QueryError::NotIdle(char::from(s))),
                };
            }
            _ => {}
        }
    }
}

/// Re-reads the current value of every recorded parameter (one `SELECT current_setting(..)`
/// round trip), for a session in which the server reported changes the reset may not undo.
pub(crate) async fn reread_params(
    stream: &mut UpstreamStream,
    params: &mut [(String, String)],
) -> Result<(), QueryError> {
    if params.is_empty() {
        return Ok(());
    }
    let columns: Vec<String> = params
        .iter()
        .map(|(name, _)| format!("current_setting({}, true)", literal(name)))
        .collect();
    send_query(stream, &format!("SELECT {}", columns.join(", "))).await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut row = None;
    loop {
        let (message, frame) = read_backend(stream, &mut buf).await?;
        match message {
            BackendMessage::Other { tag: b'D' } => {
                row = Some(decode_data_row(&frame).map_err(UpstreamError::from)?);
            }
            BackendMessage::ErrorResponse(fields) => {
                return Err(QueryError::Server {
                    code: fields.code,
                    message: fields.message,
                })
            }
            BackendMessage::ReadyForQuery { status: b'I' } => break,
            BackendMessage::ReadyForQuery { status } => {
                return Err(QueryError::NotIdle(char::from(status)))
            }
            _ => {}
        }
    }
    let values = row.ok_or(QueryError::NoRow)?;
    for ((_, value), now) in params.iter_mut().zip(values) {
        if let Some(now) = now {
            *value = String::from_utf8_lossy(&now).into_owned();
        }
    }
    Ok(())
}

/// `E'…'`: a string literal whatever `standard_conforming_strings` is.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Replaces or adds one recorded ParameterStatus value.
pub(crate) fn set_param(params: &mut Vec<(String, String)>, name: String, value: String) {
    match params.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => params.push((name, value)),
    }
}

/// `SET application_name = E'…'`: an escape string, so the result does not depend on
/// `standard_conforming_strings`.
pub(crate) fn set_application_name(name: &str) -> String {
    format!("SET application_name = {}", literal(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_name_is_escaped() {
        assert_eq!(
            set_application_name(r"it's a \ name"),
            r"SET application_name = E'it''s a \\ name'"
        );
    }

    #[test]
    fn a_parameter_is_replaced_or_added() {
        let mut params = vec![("TimeZone".to_owned(), "UTC".to_owned())];
        set_param(&mut params, "TimeZone".into(), "Europe/Paris".into());
        set_param(&mut params, "application_name".into(), "x".into());
        assert_eq!(
            params,
            [
                ("TimeZone".to_owned(), "Europe/Paris".to_owned()),
                ("application_name".to_owned(), "x".to_owned())
            ]
        );
    }
}
