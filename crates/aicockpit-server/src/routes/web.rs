//! The web IDE (`editors/web`): its built bundle, embedded in the binary
//! with `include_bytes!` so `cargo run` needs no Node and the page needs no
//! network beyond this server.
//!
//! `/` is the page and `/assets/{file}` its script and styles. Every answer
//! carries a strict Content-Security-Policy (scripts only from this origin,
//! never inline; connections only to this origin over HTTP(S) and WS(S); no
//! framing), `nosniff`, and an `ETag` with `Cache-Control: no-cache`, so a
//! browser revalidates and a new binary's bundle is picked up at once. The
//! files go out gzip-compressed to browsers that accept it (the script is
//! about a third of its size then), compressed once per process.

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
            recent_password: false,
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
            recent_password: false,
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

/// An asset's identity: its ETag (from its SHA-256) and its gzip form,
/// both computed once per process.
struct Prepared {
    name: &'static str,
    etag: String,
    gzip_etag: String,
    gzip: Vec<u8>,
}

fn prepare(asset: &Asset) -> Prepared {
    let digest = crate::auth::sha256(asset.bytes);
    let tag = hex::encode(&digest[..12]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; an encoder error leaves the plain form only.
    let gzip = std::io::Write::write_all(&mut encoder, asset.bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    Prepared {
        name: asset.name,
        etag: format!("\"{tag}\""),
        gzip_etag: format!("\"{tag}-gz\""),
        gzip,
    }
}

/// Every asset prepared (the first call compresses; run it off the async threads).
fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS.iter())
            .map(prepare)
            .collect()
    })
}

async fn prepared_async() -> &'static [Prepared] {
    tokio::task::spawn_blocking(prepared)
        .await
        .unwrap_or_else(|_| prepared())
}

/// Whether the request's `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        })
}

async fn serve(state: &AppState, asset: &Asset, request: &HeaderMap) -> Response {
    let prepared = prepared_async().await.iter().find(|p| p.name == asset.name);
    let gzip = prepared.filter(|p| !p.gzip.is_empty() && accepts_gzip(request));
    let tag = match (gzip, prepared) {
        (Some(p), _) => p.gzip_etag.as_str(),
        (None, Some(p)) => p.etag.as_str(),
        (None, None) => "",
    };
    let fresh = !tag.is_empty()
        && request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if let Some(p) = gzip {
        (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            p.gzip.clone(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.bytes.to_vec(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
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
        if !tag.is_empty() {
            headers.insert(header::ETAG, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(&state.allowed_origins)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, &INDEX, &headers).await
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
    Ok(serve(&state, asset, &headers).await)
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
        let prepared = prepared();
        assert_eq!(prepared.len(), 1 + ASSETS.len());
        assert_ne!(prepared[1].etag, prepared[2].etag);
        for p in prepared {
            assert_ne!(p.etag, p.gzip_etag, "each encoding has its own tag");
        }
        let script = &prepared[1];
        assert!(
            script.gzip.len() * 2 < ASSETS[0].bytes.len(),
            "the script compresses: {} of {} bytes",
            script.gzip.len(),
            ASSETS[0].bytes.len()
        );
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(script.gzip.as_slice()),
            &mut unpacked,
        )
        .expect("valid gzip");
        assert_eq!(unpacked, ASSETS[0].bytes);
    }

    #[test]
    fn gzip_only_when_accepted() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("br, deflate"));
        assert!(!with("gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
