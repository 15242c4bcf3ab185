//! Reading the audit log (admins and auditors).

use axum::extract::{Query, State};
use axum::http::Method;
use axum::routing::get;
use serde::Deserialize;

use super::{schema, Body, Route};
use crate::authz::Need;
use crate::db::{self, AuditQuery, AuditRecord};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![Route {
        method: Method::GET,
        path: "/api/v1/audit",
        need: Need::AuditReader,
        recent_password: false,
        audit: None,
        summary: "Audit records, oldest first, after `after` (a record's `seq`).",
        tag: "audit",
        query: &[
            ("after", false, "only records with a larger `seq`"),
            ("user", false, "only this user's records"),
            ("action", false, "only this action, e.g. `auth.login`"),
            (
                "limit",
                false,
                "at most this many (default 100, at most 10000)",
            ),
        ],
        body: Body::None,
        response: Body::Json(schema::<Vec<AuditRecord>>),
        handler: get(read),
    }]
}

#[derive(Deserialize)]
struct AuditParams {
    after: Option<i64>,
    user: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
}

async fn read(
    State(state): State<AppState>,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<AuditRecord>>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = AuditQuery {
        after_seq: params.after,
        user: params.user,
        action: params.action,
        limit: params.limit.unwrap_or(100),
    };
    Ok(axum::Json(
        state.db.call(move |c| db::read_audit(c, &query)).await?,
    ))
}
