//! The monitor's one query: which instance answers and whether it is the writer, then the
//! topology as Aurora's `aurora_replica_status()` reports it (the query AWS's JDBC wrapper
//! uses, rows not updated for 5 minutes left out).

use std::time::Duration;

use bytes::BytesMut;

use crate::targets::ClusterEndpoint;
use crate::upstream::{simple_query, QueryError, Rows, UpstreamStream};

pub(super) const READ_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
     pg_catalog.aurora_db_instance_identifier(); \
     SELECT server_id, session_id = 'MASTER_SESSION_ID', COALESCE(replica_lag_in_msec, 0) \
     FROM pg_catalog.aurora_replica_status() \
     WHERE now() - last_update_timestamp <= interval '300 seconds' \
     OR session_id = 'MASTER_SESSION_ID' OR last_update_timestamp IS NULL";

/// What one reading found.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub in_recovery: bool,
    /// The instance that answered.
    pub instance: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub id: String,
    pub claims_writer: bool,
    pub lag: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The topology cannot be read here: not Aurora, or the user may not call the functions.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Failed(Box<QueryError>),
    #[error("the topology query returned {0}")]
    Malformed(&'static str),
}

/// SQLSTATEs that mean the functions are missing or not ours to call.
const UNAVAILABLE: &[&str] = &["42883", "42501", "3F000", "42P01"];

pub(super) async fn read(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
) -> Result<Reading, ReadError> {
    match simple_query(stream, buf, READ_SQL).await {
        Ok(rows) => parse(rows),
        Err(QueryError::Server(f)) if UNAVAILABLE.contains(&f.code.as_str()) => Err(
            ReadError::Unavailable(format!("{} ({})", f.message, f.code)),
        ),
        Err(e) => Err(ReadError::Failed(Box::new(e))),
    }
}

/// One reading on `stream`, as `check` prints it: an instance a line with its role and lag,
/// or why the topology cannot be read (then the proxy dials the endpoint by DNS).
pub(crate) async fn describe(
    stream: &mut UpstreamStream,
    cluster: &ClusterEndpoint,
) -> Result<Vec<String>, String> {
    let r = read(stream, &mut BytesMut::new())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = r
        .rows
        .iter()
        .map(|row| {
            let role = if row.claims_writer {
                "writer"
            } else {
                "reader"
            };
            format!(
                "{} {role}, lag {} ms, endpoint {}",
                row.id,
                row.lag.as_millis(),
                cluster.instance_host(&row.id)
            )
        })
        .collect();
    lines.push(format!(
        "this session is on {} ({})",
        r.instance,
        if r.in_recovery {
            "in recovery"
        } else {
            "the writer"
        }
    ));
    Ok(lines)
}

/// The rows of [`READ_SQL`]: the first statement's one row, then the topology. Server ids
/// become DNS labels, so anything but letters, digits and `-` is left out.
pub(super) fn parse(rows: Rows) -> Result<Reading, ReadError> {
    let mut rows = rows.into_iter();
    let first = rows.next().ok_or(ReadError::Malformed("no rows"))?;
    let (Some(Some(recovery)), Some(Some(instance))) = (first.first(), first.get(1)) else {
        return Err(ReadError::Malformed("no instance identifier"));
    };
    let in_recovery = recovery == "t";
    let instance = instance.clone();
    let rows = rows
        .filter_map(|row| {
            let id = row.first()?.clone()?;
            let valid = !id.is_empty()
                && id.len() <= 63
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return None;
            }
            let claims_writer = row.get(1)?.as_deref() == Some("t");
            let lag_ms: f64 = row.get(2)?.as_deref()?.parse().ok()?;
            Some(Row {
                id,
                claims_writer,
                lag: Duration::from_secs_f64(lag_ms.max(0.0) / 1000.0),
            })
        })
        .collect();
    Ok(Reading {
        in_recovery,
        instance,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_owned)).collect()
    }

    #[test]
    fn a_reading_names_the_instance_and_the_rows() {
        let got = parse(vec![
            row(&[Some("f"), Some("orders-1")]),
            row(&[Some("orders-1"), Some("t"), Some("0")]),
            row(&[Some("orders-2"), Some("f"), Some("12.5")]),
            row(&[Some("bad.name"), Some("f"), Some("1")]),
            row(&[Some("orders-3"), Some("f"), None]),
        ])
        .unwrap();
        assert!(!got.in_recovery);
        assert_eq!(got.instance, "orders-1");
        assert_eq!(
            got.rows,
            [
                Row {
                    id: "orders-1".into(),
                    claims_writer: true,
                    lag: Duration::ZERO
                },
                Row {
                    id: "orders-2".into(),
                    claims_writer: false,
                    lag: Duration::from_micros(12_500)
                },
            ]
        );
        assert!(parse(vec![]).is_err());
        assert!(parse(vec![row(&[Some("t"), None])]).is_err());
    }
}
