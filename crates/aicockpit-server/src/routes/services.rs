//! AI services over the API: list, add, update, remove, test, activate.
//!
//! The services live where the CLI and every language server read them:
//! the config file, with keys in `<data>/keys/` (mode 0600). `api_key` is
//! write-only: no response, log line or audit record ever carries it. A
//! change of a service's kind, URL or deployment drops its stored key unless
//! a new key comes with the change, so a key typed for one host is never
//! sent to another by a later edit.

use aicockpit_ai::{client_for, key_file, remove_keys, store_key, ApiKey, ClientOptions};
use aicockpit_config::{Config, ServiceConfig, ServiceKind};
use aicockpit_engine::fim;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};

use super::{noted, schema, AuditNote, Body, Route};
use crate::authz::Need;
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    let route = |method, path, need, audit, summary, body, response, handler| Route {
        method,
        path,
        need,
        recent_password: false,
        audit,
        summary,
        tag: "services",
        query: &[],
        body,
        response,
        handler,
    };
    vec![
        route(
            Method::GET,
            "/api/v1/services",
            Need::User,
            None,
            "The AI services, and which one is active (keys are never shown).",
            Body::None,
            Body::Json(schema::<Vec<ServiceView>>),
            get(list),
        ),
        // Adds or changes where code and keys are sent: a recent password.
        Route {
            recent_password: true,
            ..route(
                Method::POST,
                "/api/v1/services",
                Need::Admin,
                Some("service.add"),
                "Add an AI service; `api_key` is stored with mode 0600 and never returned.",
                Body::Json(schema::<NewService>),
                Body::Json(schema::<ServiceView>),
                post(add),
            )
        },
        // Adds or changes where code and keys are sent: a recent password.
        Route {
            recent_password: true,
            ..route(
                Method::PUT,
                "/api/v1/services/{name}",
                Need::Admin,
                Some("service.update"),
                "Change an AI service (fields left out stay as they are).",
                Body::Json(schema::<ServiceUpdate>),
                Body::Json(schema::<ServiceView>),
                put(update),
            )
        },
        // Removing the active service makes another one active.
        Route {
            recent_password: true,
            ..route(
                Method::DELETE,
                "/api/v1/services/{name}",
                Need::Admin,
                Some("service.remove"),
                "Remove an AI service and its stored key.",
                Body::None,
                Body::None,
                delete(remove),
            )
        },
        route(
            Method::POST,
            "/api/v1/services/{name}/test",
            Need::Admin,
            Some("service.test"),
            "Test a service: list its models (latency) and probe fill-in-the-middle.",
            Body::None,
            Body::AnyJson,
            post(test),
        ),
        // Adds or changes where code and keys are sent: a recent password.
        Route {
            recent_password: true,
            ..route(
                Method::POST,
                "/api/v1/services/{name}/activate",
                Need::Admin,
                Some("service.activate"),
                "Make a service the active one for completion and chat.",
                Body::None,
                Body::Json(schema::<Vec<ServiceView>>),
                post(activate),
            )
        },
    ]
}

/// A service as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// openai, azure, lmstudio, ollama, llamacpp or custom.
    pub kind: String,
    pub base_url: String,
    pub chat_model: Option<String>,
    pub completion_model: Option<String>,
    pub deployment: Option<String>,
    pub api_version: Option<String>,
    /// The variable the key is read from, if any (its value is never shown).
    pub api_key_env: Option<String>,
    /// A key is stored on the server for this service.
    pub key_stored: bool,
    pub active: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub chat_model: Option<String>,
    pub completion_model: Option<String>,
    pub deployment: Option<String>,
    pub api_version: Option<String>,
    pub api_key_env: Option<String>,
    /// Write-only.
    pub api_key: Option<String>,
    #[serde(default)]
    pub activate: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceUpdate {
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub chat_model: Option<String>,
    pub completion_model: Option<String>,
    pub deployment: Option<String>,
    pub api_version: Option<String>,
    pub api_key_env: Option<String>,
    /// Write-only; replaces the stored key.
    pub api_key: Option<String>,
}

fn kind_name(kind: ServiceKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_kind(kind: &str) -> Result<ServiceKind, ApiError> {
    serde_json::from_value(serde_json::Value::String(kind.to_string())).map_err(|_| {
        ApiError::bad_request(format!(
            "unknown kind {kind:?}; kinds: openai, azure, lmstudio, ollama, llamacpp, custom"
        ))
    })
}

fn views(state: &AppState, config: &Config) -> Vec<ServiceView> {
    let active = config.ai.active_service().map(|s| s.name.clone());
    config
        .ai
        .services
        .iter()
        .map(|s| ServiceView {
            name: s.name.clone(),
            kind: kind_name(s.kind),
            base_url: s.base_url.clone(),
            chat_model: s.chat_model.clone(),
            completion_model: s.completion_model.clone(),
            deployment: s.deployment.clone(),
            api_version: s.api_version.clone(),
            api_key_env: s.api_key_env.clone(),
            key_stored: key_file(&state.paths.data_dir, &s.name).exists(),
            active: active.as_deref() == Some(s.name.as_str()),
        })
        .collect()
}

/// The config file alone (environment overrides are never written back).
fn file_config(state: &AppState) -> Result<Config, ApiError> {
    Config::load_file(&state.paths.config_file).map_err(|error| {
        // The parser quotes the offending line, which may hold a secret: the
        // detail goes to the log, the caller gets what to do.
        tracing::warn!(%error, "the config file cannot be read");
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "config_unreadable",
            "the server's config file cannot be read; an administrator must fix it on the server (the server log says where)",
        )
    })
}

/// Held across each read-modify-write of the config file, so two edits never lose one another.
static EDITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn save(state: &AppState, config: &Config) -> Result<Config, ApiError> {
    config
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    config
        .save(&state.paths.config_file)
        .map_err(ApiError::internal)?;
    state.reload_config().await.map_err(|error| {
        // The environment's overrides may be what fails; their values stay in the log.
        tracing::warn!(%error, "the config cannot be loaded after the change");
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "config_unreadable",
            "the change was saved, but the server's config (file and environment) cannot be loaded; the server log says why",
        )
    })
}

fn store(state: &AppState, name: &str, key: &str) -> Result<(), ApiError> {
    let key = key.trim();
    if key.is_empty() || key.len() > 4096 {
        return Err(ApiError::bad_request("`api_key` must be 1 to 4096 bytes"));
    }
    store_key(&state.paths.data_dir, name, &ApiKey::new(key))
        .map(|_| ())
        .map_err(|e| ApiError::internal(format!("cannot store the key: {e}")))
}

fn note(name: &str, key_given: bool) -> AuditNote {
    AuditNote {
        target: Some(format!("service:{name}")),
        // Whether a key came, never the key.
        detail: Some(
            serde_json::json!({ "api_key": if key_given { "[redacted]" } else { "unchanged" } }),
        ),
        ..AuditNote::default()
    }
}

async fn list(State(state): State<AppState>) -> axum::Json<Vec<ServiceView>> {
    let config = state.config();
    axum::Json(views(&state, &config))
}

fn one(state: &AppState, config: &Config, name: &str) -> Result<ServiceView, ApiError> {
    views(state, config)
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no service named {name:?}")))
}

/// A key variable is chosen on the server's host, never over the network:
/// the service's URL comes with the request, so naming any variable of the
/// server's environment (`AWS_SECRET_ACCESS_KEY`, a database password)
/// would send its value to a host of the caller's choosing.
fn env_key_refused(variable: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "key_variable_on_host",
        format!(
            "a service's key variable (api_key_env = {variable:?}) is set on the server's host, \
             in its config file or with `aicockpit ai add`, not over the API: send the key \
             itself as `api_key` (stored for this service's URL only)"
        ),
    )
}

async fn add(
    State(state): State<AppState>,
    Json(body): Json<NewService>,
) -> Result<Response, ApiError> {
    if let Some(variable) = &body.api_key_env {
        return Err(env_key_refused(variable));
    }
    let _edit = EDITS.lock().await;
    let mut config = file_config(&state)?;
    if config.ai.services.iter().any(|s| {
        key_file(&state.paths.data_dir, &s.name) == key_file(&state.paths.data_dir, &body.name)
    }) {
        return Err(ApiError::conflict(format!(
            "a service named {:?} exists already",
            body.name
        )));
    }
    config.ai.services.push(ServiceConfig {
        name: body.name.clone(),
        kind: parse_kind(&body.kind)?,
        base_url: body.base_url,
        chat_model: body.chat_model,
        completion_model: body.completion_model,
        api_key_env: body.api_key_env,
        deployment: body.deployment,
        api_version: body.api_version,
    });
    if body.activate {
        config.ai.active = Some(body.name.clone());
    }
    config
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(key) = &body.api_key {
        store(&state, &body.name, key)?;
    }
    let config = save(&state, &config).await?;
    Ok(noted(
        (
            StatusCode::CREATED,
            axum::Json(one(&state, &config, &body.name)?),
        ),
        note(&body.name, body.api_key.is_some()),
    ))
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ServiceUpdate>,
) -> Result<Response, ApiError> {
    let _edit = EDITS.lock().await;
    let mut config = file_config(&state)?;
    let service = config
        .ai
        .services
        .iter_mut()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no service named {name:?}")))?;
    let before = (
        service.kind,
        service.base_url.clone(),
        service.deployment.clone(),
    );
    if let Some(kind) = &body.kind {
        service.kind = parse_kind(kind)?;
    }
    if let Some(url) = body.base_url {
        service.base_url = url;
    }
    if body.chat_model.is_some() {
        service.chat_model = body.chat_model;
    }
    if body.completion_model.is_some() {
        service.completion_model = body.completion_model;
    }
    if body.deployment.is_some() {
        service.deployment = body.deployment;
    }
    if body.api_version.is_some() {
        service.api_version = body.api_version;
    }
    // The same variable again (a form sends back what it showed) is no change.
    if let Some(variable) = body
        .api_key_env
        .filter(|v| service.api_key_env.as_ref() != Some(v))
    {
        return Err(env_key_refused(&variable));
    }
    let moved = before
        != (
            service.kind,
            service.base_url.clone(),
            service.deployment.clone(),
        );
    if let Some(variable) = &service.api_key_env {
        if body.api_key.is_some() {
            // A key typed for the service replaces the host's variable.
            service.api_key_env = None;
        } else if moved {
            // The variable was set on the host for the service's old
            // destination: it goes nowhere else.
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "key_variable_on_host",
                format!(
                    "{name} sends the server's ${variable} as its key: its kind, URL or \
                     deployment changes only with a new `api_key` (which replaces the variable), \
                     or on the server's host"
                ),
            ));
        }
    }
    config
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match &body.api_key {
        Some(key) => store(&state, &name, key)?,
        None if moved => {
            // A stored key stays with the destination it was typed for.
            let _ = std::fs::remove_file(key_file(&state.paths.data_dir, &name));
        }
        None => {}
    }
    let config = save(&state, &config).await?;
    Ok(noted(
        axum::Json(one(&state, &config, &name)?),
        note(&name, body.api_key.is_some()),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let _edit = EDITS.lock().await;
    let mut config = file_config(&state)?;
    let before = config.ai.services.len();
    config.ai.services.retain(|s| s.name != name);
    if config.ai.services.len() == before {
        return Err(ApiError::not_found(format!("no service named {name:?}")));
    }
    if config.ai.active.as_deref() == Some(name.as_str()) {
        config.ai.active = config.ai.services.first().map(|s| s.name.clone());
    }
    save(&state, &config).await?;
    remove_keys(&state.paths.data_dir, &name, &config.ai);
    Ok(noted(StatusCode::NO_CONTENT, note(&name, false)))
}

async fn activate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let _edit = EDITS.lock().await;
    let mut config = file_config(&state)?;
    if !config.ai.services.iter().any(|s| s.name == name) {
        return Err(ApiError::not_found(format!("no service named {name:?}")));
    }
    config.ai.active = Some(name.clone());
    let config = save(&state, &config).await?;
    Ok(noted(
        axum::Json(views(&state, &config)),
        note(&name, false),
    ))
}

async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let service = config
        .ai
        .services
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no service named {name:?}")))?;
    let client = client_for(
        service.clone(),
        &file_config(&state)?.ai,
        &state.paths.data_dir,
        |variable| std::env::var(variable).ok(),
        ClientOptions {
            max_retries: 1,
            ..ClientOptions::default()
        },
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "service_unusable",
            e.to_string(),
        )
    })?;
    let report = client.test().await;
    let discovers = matches!(service.kind, ServiceKind::Lmstudio | ServiceKind::Ollama)
        && !report.models.is_empty();
    let probe = if report.ok
        && (service.completion_model.is_some() || service.chat_model.is_some() || discovers)
    {
        let probe = fim::probe(&client).await;
        if let Err(error) = fim::record_verdict(&state.paths.data_dir, &service, probe.fim_capable)
        {
            tracing::warn!(%error, "cannot record the fill-in-the-middle verdict");
        }
        Some(probe)
    } else {
        None
    };
    let body = serde_json::json!({ "test": report, "fim_probe": probe });
    Ok(noted(axum::Json(body), note(&name, false)))
}
