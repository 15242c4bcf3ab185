//! `aicockpit serve`, `aicockpit admin …` and `aicockpit audit`: the server
//! and the commands that work on its data folder (recovery, scripts).

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::PathBuf;

use aicockpit_config::{Config, Paths};
use aicockpit_server::db::{self, AuditQuery, SiteRole};
use aicockpit_server::{auth, open_db, ServeOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

/// Flags of `aicockpit serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --tls-cert/--tls-key or --insecure-bind-public.
    #[arg(long, default_value = "127.0.0.1:8080", env = "AICOCKPIT_BIND")]
    pub bind: SocketAddr,
    /// The data folder (database, workspace records, keys); default $XDG_DATA_HOME/aicockpit or $AICOCKPIT_DATA_DIR.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS, because a TLS proxy is in front (see docs/deployment.md).
    #[arg(long)]
    pub insecure_bind_public: bool,
    /// The URL people open (e.g. https://cockpit.example.com) when it is not the bind address; cookies only accept requests from it.
    #[arg(long, env = "AICOCKPIT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Also serve /metrics without authentication on this address (keep it loopback or firewalled).
    #[arg(long)]
    pub metrics_bind: Option<SocketAddr>,
    /// Seconds after a user proves their password (logging in, or confirming it when asked) during which their browser session may create API tokens, create, change or delete users and add or change AI services; later the web IDE asks for the password again. 0 asks every time; API tokens are never asked.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 900,
        env = "AICOCKPIT_REAUTH_AFTER"
    )]
    pub reauth_after: u64,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user. The password is read from stdin when piped, else a random one is printed.
    CreateUser {
        /// The new user's name: 1–64 letters, digits, `.`, `_`, `-` or `@`.
        name: String,
        /// admin, member or auditor.
        #[arg(long, default_value = "member")]
        role: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from stdin when piped, else a random one is printed); ends the user's sessions, API tokens and login links.
    ResetPassword {
        /// The user whose password is set.
        name: String,
        /// Print the result (and a generated password) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a new API token (for the first admin unless --user is given).
    Token {
        /// The user the token acts as (default: the first admin).
        #[arg(long)]
        user: Option<String>,
        /// A label for the token, shown in `GET /api/v1/tokens`.
        #[arg(long, default_value = "cli")]
        name: String,
        /// How many days the token works (1 to 3650); make a new one when it expires.
        #[arg(long, default_value_t = auth::TOKEN_DAYS_DEFAULT, value_parser = clap::value_parser!(u32).range(1..=i64::from(auth::TOKEN_DAYS_MAX)))]
        expires_in_days: u32,
        /// Print the user, the token's id, when it expires (Unix seconds) and the token as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time login URL (for the first admin unless --user is given), valid 15 minutes.
    LoginLink {
        /// The user the link signs in (default: the first admin).
        #[arg(long)]
        user: Option<String>,
        /// The server's URL, as people open it.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the user and the URL as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    Users {
        /// Print the users as a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// Flags of `aicockpit audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// Only records after this sequence number.
    #[arg(long)]
    pub after: Option<i64>,
    /// Only this user's records.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this action (e.g. auth.login, workspace.create).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// The data folder, as given to `aicockpit serve --data-dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// One JSON array.
    #[arg(long)]
    pub json: bool,
}

fn with_data_dir(mut paths: Paths, data_dir: Option<PathBuf>) -> Paths {
    if let Some(dir) = data_dir {
        paths.data_dir = dir;
    }
    paths
}

pub fn serve(paths: Paths, config: Config, args: ServeArgs) -> Result<()> {
    let paths = with_data_dir(paths, args.data_dir);
    let options = ServeOptions {
        bind: args.bind,
        paths,
        config,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_bind_public: args.insecure_bind_public,
        public_url: args.public_url,
        metrics_bind: args.metrics_bind,
        body_idle_timeout: aicockpit_server::routes::BODY_IDLE_TIMEOUT,
        reauth_after: std::time::Duration::from_secs(args.reauth_after),
        socket_idle_timeout: aicockpit_server::routes::SOCKET_IDLE_TIMEOUT,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(aicockpit_server::serve(
        options,
        tokio_util_stop(),
        |started| {
            println!("AiCockpit is listening on {}", started.url);
            for warning in &started.warnings {
                eprintln!("warning: {warning}");
            }
            match &started.login_url {
                Some(url) => println!(
                    "First start: open this one-time login URL (valid 15 minutes) to sign in as `admin`:\n{url}\n\
                     Then set a password on the Account page right away: making tokens or users later asks for it."
                ),
                None => println!(
                    "Sign in at {}/ (lost access? `aicockpit admin login-link` prints a new one-time URL)",
                    started.url
                ),
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
    ))?;
    Ok(())
}

fn tokio_util_stop() -> aicockpit_server::CancellationToken {
    aicockpit_server::CancellationToken::new()
}

/// A password from stdin when piped, else a new random one (and whether it was generated).
fn password_input() -> Result<(String, bool)> {
    if std::io::stdin().is_terminal() {
        return Ok((auth::random_string(15), true));
    }
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("cannot read the password from stdin")?;
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Ok((auth::random_string(15), true));
    }
    Ok((password, false))
}

fn user_or_first_admin(c: &rusqlite_free::Connection, name: Option<&str>) -> Result<db::User> {
    let user = match name {
        Some(name) => db::user_by_name(c, name)?,
        None => db::first_admin(c)?,
    };
    match (user, name) {
        (Some(user), _) => Ok(user),
        (None, Some(name)) => bail!("no user named {name:?} (see `aicockpit admin users`)"),
        (None, None) => bail!("there is no admin yet: start `aicockpit serve` once, or `aicockpit admin create-user NAME --role admin`"),
    }
}

mod rusqlite_free {
    pub use aicockpit_server::db::Connection;
}

pub fn admin(paths: Paths, data_dir: Option<PathBuf>, command: AdminCommand) -> Result<()> {
    let paths = with_data_dir(paths, data_dir);
    let db = open_db(&paths).with_context(|| {
        format!(
            "cannot open the server database in {}",
            paths.data_dir.display()
        )
    })?;
    match command {
        AdminCommand::CreateUser { name, role, json } => {
            let role = SiteRole::parse(&role)
                .with_context(|| format!("unknown role {role:?}: admin, member or auditor"))?;
            let (password, generated) = password_input()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let user = runtime
                .block_on(aicockpit_server::routes::users::create_user(
                    &db,
                    name,
                    password.clone(),
                    role,
                ))
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let (target, role) = (format!("user:{}", user.name), user.role);
            db.call_blocking(move |c| {
                db::append_host_audit(
                    c,
                    "user.create",
                    target,
                    "aicockpit admin create-user",
                    serde_json::json!({ "role": role }),
                )
            })
            .context("the user was created, but the audit log could not record it")?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "user": user, "password": generated.then_some(&password) })
                );
            } else {
                println!("Created {} ({})", user.name, user.role.as_str());
                if generated {
                    println!("Password: {password}");
                }
            }
        }
        AdminCommand::ResetPassword { name, json } => {
            let (password, generated) = password_input()?;
            auth::check_password(&password).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let hash =
                auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            // A reset: the user's sessions, API tokens and login links end too.
            db.call_blocking(|c| {
                aicockpit_server::routes::users::reset_password_on_host(c, &name, &hash)
            })?
            .with_context(|| format!("no user named {name:?} (see `aicockpit admin users`)"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "user": name, "password": generated.then_some(&password) })
                );
            } else {
                println!(
                    "New password set for {name}; their sessions, API tokens and login links were ended."
                );
                if generated {
                    println!("Password: {password}");
                }
            }
        }
        AdminCommand::Token {
            user,
            name,
            expires_in_days,
            json,
        } => {
            let (user, made) = db.call_blocking(|c| {
                let user = user_or_first_admin(c, user.as_deref())
                    .map_err(|e| db::DbError::Worker(e.to_string()))?;
                // Made and recorded together, or not at all.
                let made = db::atomically(c, |c| {
                    let made = auth::create_token(c, user.id, &name, expires_in_days)?;
                    db::append_host_audit(
                        c,
                        "token.create",
                        format!("token:{}", made.id),
                        "aicockpit admin token",
                        serde_json::json!({ "user": user.name, "expires_at": made.expires_at }),
                    )?;
                    Ok(made)
                })?;
                Ok((user, made))
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "user": user.name,
                        "id": made.id,
                        "expires_at": made.expires_at,
                        "token": made.token,
                    })
                );
            } else {
                println!("{}", made.token);
            }
        }
        AdminCommand::LoginLink { user, url, json } => {
            let (user, token) = db.call_blocking(|c| {
                let user = user_or_first_admin(c, user.as_deref())
                    .map_err(|e| db::DbError::Worker(e.to_string()))?;
                let token = db::atomically(c, |c| {
                    let token = auth::create_login_link(c, user.id)?;
                    db::append_host_audit(
                        c,
                        "login_link.create",
                        format!("user:{}", user.name),
                        "aicockpit admin login-link",
                        serde_json::json!({}),
                    )?;
                    Ok(token)
                })?;
                Ok((user, token))
            })?;
            let link = format!("{}/login?token={token}", url.trim_end_matches('/'));
            if json {
                println!("{}", serde_json::json!({ "user": user.name, "url": link }));
            } else {
                println!("{link}");
            }
        }
        AdminCommand::Users { json } => {
            let users = db.call_blocking(|c| db::list_users(c))?;
            if json {
                println!("{}", serde_json::to_string(&users)?);
            } else {
                for user in users {
                    println!("{:<24} {}", user.name, user.role.as_str());
                }
            }
        }
    }
    Ok(())
}

pub fn audit(paths: Paths, args: AuditArgs) -> Result<()> {
    let paths = with_data_dir(paths, args.data_dir);
    let db = open_db(&paths).with_context(|| {
        format!(
            "cannot open the server database in {}",
            paths.data_dir.display()
        )
    })?;
    let query = AuditQuery {
        after_seq: args.after,
        user: args.user,
        action: args.action,
        limit: args.limit,
    };
    let records = db.call_blocking(|c| db::read_audit(c, &query))?;
    if args.json {
        println!("{}", serde_json::to_string(&records)?);
    } else {
        for r in records {
            println!(
                "{:>6} {} {:<12} {:<16} {:<20} {} {}",
                r.seq,
                r.time_ms,
                r.user.as_deref().unwrap_or("-"),
                r.address.as_deref().unwrap_or("-"),
                r.action,
                r.result,
                r.target.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
