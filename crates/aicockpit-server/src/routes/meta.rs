//! Health, metrics, server status, the OpenAPI description generated from
//! the route table (the home page is the web IDE's, in [`super::web`]).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    Required, SecurityRequirement,
};

use super::{schema, table, Body, Route};
use crate::authz::Need;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/healthz",
            need: Need::Public,
            recent_password: false,
            audit: None,
            summary: "Liveness: 200 and `ok` while the server runs (no authentication).",
            tag: "meta",
            query: &[],
            body: Body::None,
            response: Body::Text,
            handler: get(|| async { "ok" }),
        },
        Route {
            method: Method::GET,
            path: "/metrics",
            need: Need::AuditReader,
            recent_password: false,
            audit: None,
            summary:
                "Prometheus metrics (admins and auditors, or unauthenticated on --metrics-bind).",
            tag: "meta",
            query: &[],
            body: Body::None,
            response: Body::Text,
            handler: get(metrics),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/openapi.json",
            need: Need::Public,
            recent_password: false,
            audit: None,
            summary: "This description of the API, generated from the route table.",
            tag: "meta",
            query: &[],
            body: Body::None,
            response: Body::AnyJson,
            handler: get(|| async { axum::Json(openapi()) }),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/status",
            need: Need::User,
            recent_password: false,
            audit: None,
            summary:
                "Server status: version, backend, warnings (such as the local backend being used).",
            tag: "meta",
            query: &[],
            body: Body::None,
            response: Body::Json(schema::<Status>),
            handler: get(status),
        },
    ]
}

/// What `/api/v1/status` says.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    pub version: String,
    /// `docker` or `local`.
    pub backend: String,
    /// Whether workspace processes are isolated from the host (false for the local backend).
    pub isolated: bool,
    pub warnings: Vec<String>,
    pub uptime_secs: u64,
    pub active_service: Option<String>,
}

async fn status(State(state): State<AppState>) -> axum::Json<Status> {
    let config = state.config();
    axum::Json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        backend: state.manager.options().backend.name().to_string(),
        isolated: state.manager.backend().isolated(),
        warnings: state.warnings.clone(),
        uptime_secs: state.started.elapsed().as_secs(),
        active_service: config.ai.active_service().map(|s| s.name.clone()),
    })
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let workspaces = state.manager.list().map(|l| l.len()).unwrap_or(0);
    let terminals = state.manager.terminals().len();
    let _ = state.metrics.lsp_sessions.load(Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(workspaces, terminals),
    )
        .into_response()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

fn content(
    body: Body,
    schemas: &mut super::Schemas,
) -> Option<(&'static str, utoipa::openapi::Content)> {
    match body {
        Body::None | Body::WebSocket => None,
        Body::Json(make) => {
            let name = make(schemas);
            Some((
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(name)))
                    .build(),
            ))
        }
        Body::AnyJson => Some(("application/json", ContentBuilder::new().build())),
        Body::Binary => Some(("application/octet-stream", ContentBuilder::new().build())),
        Body::EventStream => Some(("text/event-stream", ContentBuilder::new().build())),
        Body::Text => Some(("text/plain", ContentBuilder::new().build())),
    }
}

/// The OpenAPI description of every route in the table.
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut schemas = Vec::new();
    for route in table() {
        let mut operation = OperationBuilder::new()
            .summary(Some(route.summary))
            .tag(route.tag)
            .operation_id(Some(format!(
                "{}_{}",
                route.method.as_str().to_lowercase(),
                route
                    .path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '.'], "_")
            )));
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .build(),
                );
            }
        }
        for (name, required, description) in route.query {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(*description))
                    .build(),
            );
        }
        if let Some((mime, body)) = content(route.body, &mut schemas) {
            operation =
                operation.request_body(Some(RequestBodyBuilder::new().content(mime, body).build()));
        }
        let ok = match content(route.response, &mut schemas) {
            Some((mime, body)) => ResponseBuilder::new()
                .description("success")
                .content(mime, body),
            None => ResponseBuilder::new().description("success"),
        };
        let ok_code = if matches!(route.response, Body::WebSocket) {
            "101"
        } else {
            "200"
        };
        operation = operation.response(ok_code, ok.build());
        if route.need != Need::Public {
            operation = operation
                .response(
                    "401",
                    ResponseBuilder::new().description("not signed in").build(),
                )
                .response(
                    "403",
                    ResponseBuilder::new()
                        .description("signed in, but not allowed")
                        .build(),
                )
                .securities(Some([
                    SecurityRequirement::new("token", Vec::<String>::new()),
                    SecurityRequirement::new("session", Vec::<String>::new()),
                ]));
        }
        operation = operation.extensions(Some(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-aicockpit-needs", format!("{:?}", route.need))
                .build(),
        ));
        paths = paths.path(
            route.path,
            utoipa::openapi::PathItem::new(http_method(&route.method), operation.build()),
        );
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("acp_<id>_<secret>")
                    .build(),
            ),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "`aicockpit_session` over plain HTTP; `__Host-aicockpit_session` when the \
                 server is served over https (only that name is read then)",
            ))),
        );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("AiCockpit API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Generated from the server's route table; see docs/api.md.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}
