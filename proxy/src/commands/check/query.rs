//! The last stage: `SELECT 1` on the authenticated session.

use bytes::BytesMut;

use crate::upstream::{simple_query, QueryError, UpstreamError, UpstreamStream};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the database answered SELECT 1 with an error: {message} ({code})")]
    Server { code: String, message: String },
    #[error("SELECT 1 returned no row")]
    NoRow,
}

/// Runs `SELECT 1` and returns the value of the first column of the first row.
pub async fn select_one(stream: &mut UpstreamStream) -> Result<String, SelectError> {
    let rows = simple_query(stream, &mut BytesMut::new(), "SELECT 1")
        .await
        .map_err(|e| match e {
            QueryError::Upstream(e) => SelectError::Upstream(e),
            QueryError::Server(f) => SelectError::Server {
                code: f.code,
                message: f.message,
            },
        })?;
    let first = rows.into_iter().next().ok_or(SelectError::NoRow)?;
    Ok(first
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| "NULL".into()))
}
