//! The web IDE (`editors/web`): its built bundle, embedded in the binary
//! with `include_bytes!` so `cargo run` needs no Node and the page needs no
//! network beyond this server.
//!
//! `/` is the page and `/assets/{file}` its script and styles. Every answer
//! carries a strict Content-Security-Policy (scripts only from this origin,
//! never inline; connections only to this origin over HTTP(S) and WS(S); no
//! framing), `nosniff`, and an `ETag` with `Cache-Control: no-cache`, so a
//! browser revalidates and a new binary's bundle is picked up at once.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Body, Route};
use crate::authz::Need;
use crate::error::ApiError;
use crate::state::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../../../editors/web/dist/index.html"),
};

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../../editors/web/dist/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../../editors/web/dist/app.css"),
    },
];

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/",
            need: Need::Public,
            audit: None,
            summary: "The web IDE (login, dashboard, editor); see docs/web-ide.md.",
            tag: "web",
            query: &[],
            body: Body::None,
            response: Body::Text,
            handler: get(index),
        },
        Route {
            method: Method::GET,
            path: "/assets/{file}",
            need: Need::Public,
            audit: None,
            summary:
                "The web IDE's script and styles (`app.js`, `app.css`), embedded in the binary.",
            tag: "web",
            query: &[],
            body: Body::None,
            response: Body::Text,
            handler: get(asset),
        },
    ]
}

/// The Content-Security-Policy for the server's origins: nothing inline
/// runs, nothing loads or connects anywhere else. Styles allow inline
/// because CodeMirror and xterm.js inject their own style sheets.
pub fn content_security_policy(allowed_origins: &[String]) -> String {
    let sockets: Vec<String> = allowed_origins
        .iter()
        .filter_map(|origin| {
            origin
                .strip_prefix("https://")
                .map(|host| format!("wss://{host}"))
                .or_else(|| {
                    origin
                        .strip_prefix("http://")
                        .map(|host| format!("ws://{host}"))
                })
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'{}{}; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        if sockets.is_empty() { "" } else { " " },
        sockets.join(" ")
    )
}

/// A strong ETag of an asset (its SHA-256), computed once per file.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS.iter())
            .map(|a| {
                let digest = crate::auth::sha256(a.bytes);
                (a.name, format!("\"{}\"", hex::encode(&digest[..12])))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map(|(_, tag)| tag.as_str())
        .unwrap_or("\"\"")
}

fn serve(state: &AppState, asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.bytes.to_vec(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(&state.allowed_origins)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, &INDEX, &headers)
}

async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asset = ASSETS.iter().find(|a| a.name == file).ok_or_else(|| {
        ApiError::not_found(format!(
            "no asset {file:?}; the web IDE has app.js and app.css"
        ))
    })?;
    Ok(serve(&state, asset, &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_servers_own_origins() {
        let policy = content_security_policy(&[
            "https://c.example.com".to_string(),
            "http://127.0.0.1:8080".to_string(),
        ]);
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert!(
            policy.contains("connect-src 'self' wss://c.example.com ws://127.0.0.1:8080;"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }

    #[test]
    fn the_bundle_is_embedded_and_the_page_loads_only_it() {
        let html = std::str::from_utf8(INDEX.bytes).expect("index.html is UTF-8");
        assert!(html.contains("src=\"/assets/app.js\""), "{html}");
        assert!(html.contains("href=\"/assets/app.css\""), "{html}");
        assert!(!html.contains("<script>"), "no inline script: {html}");
        assert!(
            !html.contains("http"),
            "nothing from another origin: {html}"
        );
        for asset in ASSETS {
            assert!(asset.bytes.len() > 1000, "{} is built", asset.name);
        }
        assert_ne!(etag(&ASSETS[0]), etag(&ASSETS[1]));
    }
}
