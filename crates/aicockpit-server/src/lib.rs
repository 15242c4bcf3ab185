//! `aicockpit-server`: `aicockpit serve`, a multi-user HTTP and WebSocket
//! server over workspaces, the language server and AI.
//!
//! Map: [`routes`] holds the route table (every route, its requirement and
//! its OpenAPI description in one place) and the request guard; [`authz`]
//! the one authorisation function; [`auth`] passwords, tokens, sessions and
//! the `Origin` check; [`db`] the SQLite state; [`engines`] the shared
//! language-server engine of each workspace.
//!
//! Architecture invariant: handlers are thin. Workspaces are the workspace
//! manager's, language features the engine's through the LSP crate; this
//! crate adds who may do what, and the wire. It binds loopback unless told
//! otherwise with TLS or an explicit opt-out, and no secret (password, API
//! token, session id, service key) is ever logged, returned after creation,
//! put in a URL after the one-time login link, or written to the audit log.

pub mod auth;
pub mod authz;
pub mod db;
pub mod engines;
pub mod error;
pub mod metrics;
pub mod quota;
pub mod routes;
pub mod state;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aicockpit_config::{Config, Paths};
use aicockpit_workspace::{
    BackendKind, DockerBackend, LocalBackend, ManagerOptions, WorkspaceManager,
};
pub use tokio_util::sync::CancellationToken;

use crate::db::{Db, SiteRole};
use crate::state::{AppState, StateInner};

/// How long a stopping server waits for requests still running before it
/// ends them (a long `exec`, a slow download).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's head (and a new
/// connection its first request): slow clients cannot hold connections.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// The database file's name under the data folder.
pub const DATABASE_FILE: &str = "server.db";

/// How `aicockpit serve` is started.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub paths: Paths,
    pub config: Config,
    /// PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allow a non-loopback bind without TLS (behind a TLS proxy).
    pub insecure_bind_public: bool,
    /// The URL people open, when it is not the bind address (behind a proxy).
    pub public_url: Option<String>,
    /// Serve `/metrics` without authentication on this (loopback) address too.
    pub metrics_bind: Option<SocketAddr>,
    /// How long a request body may stall between two of its pieces
    /// ([`routes::BODY_IDLE_TIMEOUT`]; tests set less).
    pub body_idle_timeout: Duration,
    /// How long after a user proved their password a browser session may
    /// make tokens, create or change users and change AI services
    /// ([`auth::RECENT_PASSWORD`] by default; zero asks every time).
    pub reauth_after: Duration,
    /// How long a WebSocket may be silent before it is closed
    /// ([`routes::SOCKET_IDLE_TIMEOUT`]; tests set less).
    pub socket_idle_timeout: Duration,
}

/// A start-up or serving failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without TLS: give --tls-cert and --tls-key, or put the server \
         behind a TLS proxy and pass --insecure-bind-public (see docs/deployment.md)"
    )]
    PublicWithoutTls(SocketAddr),
    #[error(
        "listening on {0} needs --public-url (the https://host[:port] people open), so the \
         server can tell its own pages from foreign ones"
    )]
    NoPublicUrl(SocketAddr),
    #[error(
        "--metrics-bind {0} is not a loopback address, and /metrics there needs no sign-in: \
         keep it on 127.0.0.1 (scrape through a tunnel or the proxy), or pass --insecure-bind-public"
    )]
    PublicMetrics(SocketAddr),
    #[error("--public-url {0:?} is not an http(s) URL such as https://cockpit.example.com")]
    BadPublicUrl(String),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Workspace(#[from] aicockpit_workspace::WorkspaceError),
    #[error("cannot listen on {address}: {source} (is another server using the port? pick one with --bind)")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// What a starting server tells its caller once it listens.
#[derive(Clone, Debug)]
pub struct Started {
    pub url: String,
    /// The address the server listens on (the bound port, when it was 0).
    pub address: SocketAddr,
    /// The one-time login URL, on first start only.
    pub login_url: Option<String>,
    pub warnings: Vec<String>,
}

fn is_loopback(address: &SocketAddr) -> bool {
    match address.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    }
}

/// The origin of a URL as a browser serialises it in `Origin`:
/// `scheme://host[:port]`, lower case, without the scheme's default port
/// (`https://Cockpit.Example.com:443/ide` → `https://cockpit.example.com`).
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default = format!(":{}", default_port(&scheme));
    let authority = match authority.strip_suffix(&default) {
        // Only a port: `[::1]:443` loses it, `host:8443` keeps it.
        Some(host) if !host.is_empty() && !host.ends_with(':') => host.to_string(),
        _ => authority,
    };
    auth::split_host(&authority)?;
    Some(format!("{scheme}://{authority}"))
}

/// The loopback names, as they appear in a URL's host.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// The port a scheme implies when a URL or `Host` leaves it out.
fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host:port`, and `host` alone when the port is the scheme's default
/// (what a browser sends as `Host` then), lower case.
fn host_names(host: &str, port: u16, scheme: &str) -> Vec<String> {
    let host = host.to_ascii_lowercase();
    let mut names = vec![format!("{host}:{port}")];
    if port == default_port(scheme) {
        names.push(host);
    }
    names
}

/// The server's own addresses, from one source: the origins whose pages
/// may use the session cookie (the `Origin` rule) and the `Host` names it
/// answers to (the DNS-rebinding defence). Both are the `--public-url`'s,
/// and, when listening on loopback, `127.0.0.1`, `localhost` and `[::1]`
/// at the bound port. Listening on every address (0.0.0.0, ::), the
/// loopback names at the bound port are hosts too (checks on the host
/// itself), though not origins.
fn own_addresses(
    public_url: Option<&str>,
    local: SocketAddr,
    scheme: &str,
) -> (Vec<String>, auth::AllowedHosts) {
    let mut origins = Vec::new();
    let mut hosts = auth::AllowedHosts::default();
    if let Some(origin) = public_url.and_then(origin_of) {
        if let Some((url_scheme, authority)) = origin.split_once("://") {
            match auth::split_host(authority) {
                Some((host, port)) => {
                    let host = if authority.starts_with('[') {
                        format!("[{host}]")
                    } else {
                        host.to_string()
                    };
                    let port = port.unwrap_or_else(|| default_port(url_scheme));
                    hosts.names.extend(host_names(&host, port, url_scheme));
                }
                None => hosts.names.push(authority.to_ascii_lowercase()),
            }
        }
        origins.push(origin);
    }
    let port = local.port();
    // The loopback names, and the bound address itself when it is another
    // loopback address (127.0.0.2): the URL the server prints. An address
    // literal cannot be rebound.
    let mut loopback: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
    let bound = match local.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    if is_loopback(&local) && !loopback.contains(&bound) {
        loopback.push(bound);
    }
    if is_loopback(&local) {
        for host in &loopback {
            origins.push(format!("{scheme}://{host}:{port}"));
        }
    }
    if is_loopback(&local) || local.ip().is_unspecified() {
        for host in &loopback {
            hosts.names.extend(host_names(host, port, scheme));
        }
    }
    (origins, hosts)
}

/// The `Host` names the metrics listener answers to: the loopback names at
/// its port, and, when it listens beyond loopback (`--insecure-bind-public`),
/// any address literal at its port, since a scraper reaches it by address.
fn metrics_hosts(local: SocketAddr) -> auth::AllowedHosts {
    let mut hosts = auth::AllowedHosts::default();
    for host in LOOPBACK_NAMES {
        hosts.names.extend(host_names(host, local.port(), "http"));
    }
    if !is_loopback(&local) {
        hosts.literals_at_port = Some(local.port());
    }
    hosts
}

/// Open the database under the data folder (for the server and `aicockpit admin`).
pub fn open_db(paths: &Paths) -> Result<Db, db::DbError> {
    Db::open(&paths.data_dir.join(DATABASE_FILE))
}

/// Open the workspace manager: Docker when it answers, else the local backend with a warning.
pub async fn open_manager(
    config: &Config,
    paths: &Paths,
    warnings: &mut Vec<String>,
) -> Result<WorkspaceManager, ServeError> {
    let mut options = ManagerOptions::from_config(&config.workspaces, &paths.data_dir)?;
    options.protected_dirs.extend(paths.protected_dirs());
    let backend: Arc<dyn aicockpit_workspace::Backend> = match options.backend {
        BackendKind::Docker => match DockerBackend::connect(options.docker.clone()).await {
            Ok(docker) => Arc::new(docker),
            Err(error) => {
                let warning = format!(
                    "Docker does not answer ({error}); using the local backend: workspaces are \
                     plain folders and commands run on this host without isolation, so terminals \
                     and commands are for admins only"
                );
                tracing::warn!("{warning}");
                warnings.push(warning);
                options.backend = BackendKind::Local;
                Arc::new(LocalBackend::new())
            }
        },
        BackendKind::Local => {
            let warning = "workspaces.backend is \"local\": commands run on this host without \
                           isolation, so terminals and commands are for admins only"
                .to_string();
            tracing::warn!("{warning}");
            warnings.push(warning);
            Arc::new(LocalBackend::new())
        }
    };
    Ok(WorkspaceManager::with_backend(options, backend))
}

/// First start: make the admin and a one-time login link. Also imports the
/// workspace records made before the server existed, once, owned by the first admin.
fn first_start(db: &Db, manager: &WorkspaceManager) -> Result<Option<String>, db::DbError> {
    db.call_blocking(|c| {
        let mut link = None;
        if db::user_count(c)? == 0 {
            let admin = db::create_user(c, "admin", None, SiteRole::Admin)?;
            link = Some(auth::create_login_link(c, admin.id)?);
            tracing::info!("first start: created the user `admin`");
        }
        let listed = manager.list();
        let records = listed.as_ref().map(Vec::as_slice).unwrap_or_default();
        if db::meta_get(c, "workspaces_imported")?.is_none() {
            if let Some(admin) = db::first_admin(c)? {
                for workspace in records {
                    db::insert_workspace(c, &workspace.name, admin.id, &workspace.id)?;
                }
                tracing::info!(count = records.len(), "imported existing workspace records");
            }
            db::meta_set(c, "workspaces_imported", "1")?;
        }
        // Workspaces removed (or removed and made again) with the CLI while
        // the server was down: their owners and members go.
        // (Not when the records cannot be read: that is no evidence of removal.)
        if let Ok(records) = &listed {
            let live = records.iter().map(|w| (w.name.clone(), w.id.clone())).collect();
            for name in db::reconcile_workspaces(c, &live)? {
                tracing::info!(workspace = %name, "forgot the rows of a workspace removed outside the server");
            }
        }
        Ok(link)
    })
}

/// Run the server until SIGINT/SIGTERM or `stop` is cancelled. `on_start` is
/// called once the server listens.
pub async fn serve(
    options: ServeOptions,
    stop: CancellationToken,
    on_start: impl FnOnce(Started),
) -> Result<(), ServeError> {
    if !is_loopback(&options.bind) && options.tls.is_none() && !options.insecure_bind_public {
        return Err(ServeError::PublicWithoutTls(options.bind));
    }
    if let Some(url) = &options.public_url {
        if origin_of(url).is_none() {
            return Err(ServeError::BadPublicUrl(url.clone()));
        }
    } else if !is_loopback(&options.bind) {
        return Err(ServeError::NoPublicUrl(options.bind));
    }
    let db = open_db(&options.paths)?;
    let mut warnings = Vec::new();
    let manager = open_manager(&options.config, &options.paths, &mut warnings).await?;
    match manager.reconcile().await {
        Ok(report) if report != Default::default() => {
            tracing::info!(?report, "reconciled workspaces")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot reconcile workspaces with the engine"),
    }
    let link = first_start(&db, &manager)?;
    let manager = Arc::new(manager);
    if let Some(idle) = manager.options().idle_stop {
        let _ = idle;
        manager.spawn_idle_stopper(Duration::from_secs(60));
    }

    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| ServeError::Bind {
            address: options.bind,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = options
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    let (allowed_origins, allowed_hosts) =
        own_addresses(options.public_url.as_deref(), local, scheme);
    let secure_cookies = options.tls.is_some()
        || options
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    let shutdown = CancellationToken::new();
    let state = AppState(Arc::new(StateInner {
        db: db.clone(),
        manager: manager.clone(),
        paths: options.paths.clone(),
        config: RwLock::new(options.config.clone()),
        limiter: auth::LoginLimiter::default(),
        allowed_origins,
        allowed_hosts,
        public_url: url.clone(),
        secure_cookies,
        body_idle_timeout: options.body_idle_timeout,
        reauth_after: options.reauth_after,
        socket_idle_timeout: options.socket_idle_timeout,
        warnings: warnings.clone(),
        metrics: metrics::Metrics::default(),
        shutdown: shutdown.clone(),
        started: Instant::now(),
        sessions: engines::Engines::new(options.config.clone(), options.paths.clone()),
        connections: quota::Connections::default(),
        terminal_shells: quota::Connections::new(quota::Kind::Terminals),
        detached: aicockpit_workspace::Detached::default(),
    }));
    let app = routes::app(state.clone());

    if let Some(metrics_bind) = options.metrics_bind.filter(|a| !is_loopback(a)) {
        if !options.insecure_bind_public {
            return Err(ServeError::PublicMetrics(metrics_bind));
        }
    }
    if let Some(metrics_bind) = options.metrics_bind {
        let metrics_state = state.clone();
        let metrics_listener =
            tokio::net::TcpListener::bind(metrics_bind)
                .await
                .map_err(|source| ServeError::Bind {
                    address: metrics_bind,
                    source,
                })?;
        let stop_metrics = shutdown.clone();
        let metrics_hosts = Arc::new(metrics_hosts(
            metrics_listener.local_addr().unwrap_or(metrics_bind),
        ));
        tokio::spawn(async move {
            let app = axum::Router::new()
                .route("/metrics", axum::routing::get(routes::meta::metrics))
                .layer(axum::middleware::from_fn_with_state(
                    metrics_hosts,
                    routes::host_guard,
                ))
                .with_state(metrics_state);
            let _ = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(stop_metrics.cancelled_owned())
                .await;
        });
    }

    on_start(Started {
        url: url.clone(),
        address: local,
        login_url: link.map(|token| format!("{url}/login?token={token}")),
        warnings,
    });
    tracing::info!(%url, "listening");

    // Stop on a signal or when the caller says so; then tell every live
    // connection and give them a moment to say goodbye.
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_stop.cancel();
    });
    let graceful = {
        let shutdown = shutdown.clone();
        let stop = stop.clone();
        let state = state.clone();
        async move {
            stop.cancelled().await;
            tracing::info!("shutting down: telling open terminals and language-server sessions");
            shutdown.cancel();
            // Sessions are told and edits flushed before the listener closes.
            state.sessions.shutdown_all().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    // Graceful, within bounds: a command may be given an hour and a download
    // may crawl, but a stop waits for them at most SHUTDOWN_GRACE.
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        graceful.await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let listener = listener.into_std().map_err(ServeError::Serve)?;
    let mut server = axum_server::from_tcp(listener)
        .map_err(ServeError::Serve)?
        .first_request_timeout(REQUEST_HEAD_TIMEOUT);
    server
        .http_builder()
        .http1()
        .header_read_timeout(REQUEST_HEAD_TIMEOUT);
    let server = server.handle(handle);
    let result = match &options.tls {
        // Small frames (an LSP answer right after a notification, a
        // terminal's echo) go out at once: with Nagle's algorithm they wait
        // for the client's delayed ACK, up to 40 ms on Linux.
        None => {
            server
                .acceptor(axum_server::accept::NoDelayAcceptor::new())
                .serve(service)
                .await
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    ServeError::Tls(format!(
                        "cannot load {} / {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            server
                .acceptor(
                    axum_server::tls_rustls::RustlsAcceptor::new(config)
                        .acceptor(axum_server::accept::NoDelayAcceptor::new()),
                )
                .serve(service)
                .await
        }
    }
    .map_err(ServeError::Serve);
    // Calls cut at the end of the grace left kills and audit records to
    // write: the runtime must not go before them.
    if !state.manager.settle(SHUTDOWN_GRACE).await {
        tracing::warn!("stopping before every abandoned command was killed");
    }
    if !state.detached.settle(Duration::from_secs(5)).await {
        tracing::warn!("stopping before every audit record of a cut call was written");
    }
    if let Err(error) = db.checkpoint() {
        tracing::warn!(%error, "cannot checkpoint the database");
    }
    tracing::info!("stopped");
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://c.example.com/ide").as_deref(),
            Some("https://c.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("https://user@evil"), None);
        assert_eq!(origin_of("https://host:port"), None);
        // As browsers send `Origin`: lower case, no default port.
        for (url, origin) in [
            (
                "https://Cockpit.Example.com:443/ide",
                "https://cockpit.example.com",
            ),
            ("HTTP://localhost:80", "http://localhost"),
            ("http://c.example.com:8443?x", "http://c.example.com:8443"),
            ("https://c.example.com:4430", "https://c.example.com:4430"),
            ("https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
            ("https://c.example.com:80", "https://c.example.com:80"),
        ] {
            assert_eq!(origin_of(url).as_deref(), Some(origin), "{url}");
        }
    }

    #[test]
    fn origins_and_hosts_come_from_one_source() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let (origins, hosts) = own_addresses(None, loopback, "http");
        assert_eq!(
            origins,
            [
                "http://127.0.0.1:8080",
                "http://localhost:8080",
                "http://[::1]:8080"
            ]
        );
        assert_eq!(
            hosts.names,
            ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"]
        );
        assert_eq!(hosts.literals_at_port, None);

        let (origins, hosts) =
            own_addresses(Some("https://Cockpit.Example.com/ide"), loopback, "http");
        assert_eq!(origins[0], "https://cockpit.example.com");
        assert!(hosts.allows("cockpit.example.com"));
        assert!(hosts.allows("cockpit.example.com:443"));
        assert!(hosts.allows("localhost:8080"));
        assert!(!hosts.allows("cockpit.example.com:80"));
        assert!(!hosts.allows("localhost"));

        // Another loopback address: the URL the server prints works too.
        let other: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let (origins, hosts) = own_addresses(None, other, "http");
        assert!(
            origins.iter().any(|o| o == "http://127.0.0.2:8080"),
            "{origins:?}"
        );
        assert!(hosts.allows("127.0.0.2:8080") && hosts.allows("localhost:8080"));
        assert!(!hosts.allows("127.0.0.3:8080"));

        // Direct TLS on every address: the public name, and loopback names
        // at the bound port for checks on the host (hosts, not origins).
        let everywhere: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let (origins, hosts) = own_addresses(
            Some("https://cockpit.example.com:8443"),
            everywhere,
            "https",
        );
        assert_eq!(origins, ["https://cockpit.example.com:8443"]);
        assert!(hosts.allows("cockpit.example.com:8443"));
        assert!(!hosts.allows("cockpit.example.com"));
        assert!(hosts.allows("127.0.0.1:8443"));
        assert!(!hosts.allows("10.0.0.5:8443"));

        // Behind a proxy on another host: only the public name.
        let private: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let (_, hosts) = own_addresses(Some("https://[2001:db8::1]"), private, "http");
        assert_eq!(hosts.names, ["[2001:db8::1]:443", "[2001:db8::1]"]);
        assert!(!hosts.allows("10.0.0.5:8080"));

        // An explicit default port: the origin a browser sends, both hosts.
        let (origins, hosts) =
            own_addresses(Some("https://cockpit.example.com:443/"), loopback, "http");
        assert_eq!(origins[0], "https://cockpit.example.com");
        assert!(hosts.allows("cockpit.example.com") && hosts.allows("cockpit.example.com:443"));

        // Port 80 over http: browsers leave it out of Host.
        let (_, hosts) = own_addresses(None, "127.0.0.1:80".parse().unwrap(), "http");
        assert!(hosts.allows("localhost") && hosts.allows("localhost:80"));
    }

    #[test]
    fn the_metrics_listener_takes_address_literals_only_beyond_loopback() {
        let hosts = metrics_hosts("127.0.0.1:9100".parse().unwrap());
        assert!(hosts.allows("127.0.0.1:9100") && hosts.allows("localhost:9100"));
        assert!(!hosts.allows("10.0.0.5:9100"));
        let hosts = metrics_hosts("0.0.0.0:9100".parse().unwrap());
        assert!(hosts.allows("10.0.0.5:9100") && hosts.allows("[fd00::5]:9100"));
        assert!(!hosts.allows("10.0.0.5:9101"));
        assert!(!hosts.allows("scrape.example:9100"));
        assert!(!hosts.allows("10.0.0.5"));
    }
}
