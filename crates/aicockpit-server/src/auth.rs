//! Who is calling: passwords (argon2id), API tokens (`acp_<id>_<secret>`,
//! stored as SHA-256), browser sessions (a random id in an HttpOnly,
//! SameSite cookie, stored as SHA-256; `__Host-` named over https), one-time
//! login links, the login rate limiter, the `Host` check every request
//! passes, and the `Origin` check for cookie requests and WebSocket upgrades.
//!
//! Invariants: no secret is stored, logged or returned after it is made
//! (only its hash is kept); every comparison of a secret is constant-time;
//! a cookie never authenticates a state-changing request or a WebSocket
//! upgrade whose `Origin` is not one of the server's own; no request under a
//! `Host` name that is not the server's reaches a route.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap, Method};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::{self, Db, User};
use crate::error::ApiError;

/// The session cookie's name over plain HTTP (loopback).
pub const SESSION_COOKIE: &str = "aicockpit_session";
/// The session cookie's name when cookies are `Secure` (https): the
/// `__Host-` prefix makes browsers accept it only with `Secure`, `Path=/`
/// and no `Domain`, set by this very host, so a sibling subdomain can
/// neither set nor shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-aicockpit_session";

/// The one session cookie name of a mode: [`SECURE_SESSION_COOKIE`] when
/// cookies are `Secure`, else [`SESSION_COOKIE`] (browsers refuse a
/// `__Host-` cookie without `Secure`).
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}
/// How long a browser session lives.
pub const SESSION_LIFETIME_SECS: i64 = 7 * 24 * 3600;
/// How long a one-time login link lives.
pub const LOGIN_LINK_LIFETIME_SECS: i64 = 15 * 60;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// How a request was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A browser session; the hash of its id.
    Session(Vec<u8>),
    /// An API token, by its public id.
    Token(String),
}

impl Principal {
    /// The limiter's budget for this caller's password checks (never a
    /// secret): a session by a prefix of its id's hash; all API tokens of
    /// the user together, since a token holder can mint more tokens
    /// without a password, and sessions cannot be made without one.
    pub fn password_budget(&self) -> String {
        match &self.credential {
            Credential::Session(hash) => {
                let hex: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("session:{hex}")
            }
            Credential::Token(_) => format!("tokens-of:{}", self.user.id),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
}

/// Whether the credential a request was authenticated with is still live,
/// read now (not when the request's headers arrived): its session unrevoked
/// and unexpired, or its token unrevoked, and its user still there under the
/// same name and role. A row of a deleted user goes with the user, so a
/// later user given the same id does not inherit it.
pub fn credential_is_live(
    c: &rusqlite::Connection,
    principal: &Principal,
) -> Result<bool, db::DbError> {
    match &principal.credential {
        Credential::Session(hash) => db::session_is_live(c, hash, &principal.user),
        Credential::Token(id) => db::token_is_live(c, id, &principal.user),
    }
}

/// Run `work`, which mints a credential or changes users or roles, in one
/// `IMMEDIATE` transaction that first re-checks the caller's credential
/// ([`credential_is_live`]): the guard checked it when the headers came,
/// but the body may come much later, after a password reset or deletion
/// ended that credential. Refused with 401 then; an error (or a refusal
/// from `work`) rolls everything back.
pub async fn call_as_live<T: Send + 'static>(
    db: &Db,
    principal: &Principal,
    work: impl FnOnce(&rusqlite::Connection) -> Result<Result<T, ApiError>, db::DbError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let principal = principal.clone();
    db.call(move |c| {
        let transaction = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !credential_is_live(&transaction, &principal)? {
            return Ok(Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_expired",
                "the session or API token of this request was revoked or has expired: log in again",
            )));
        }
        let outcome = work(&transaction)?;
        if outcome.is_ok() {
            transaction.commit()?;
        }
        Ok(outcome)
    })
    .await?
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A random URL-safe string of `n` random bytes.
pub fn random_string(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n))
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Hash a password with argon2id (the crate's defaults: 19 MiB, 2 passes).
/// Slow by design: call it on the blocking pool.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(&random_bytes(16)).map_err(ApiError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(ApiError::internal)
}

/// Check a password against a stored hash (constant-time inside argon2).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hash on the blocking pool, in a hashing slot.
pub async fn hash_password_async(password: String) -> Result<String, ApiError> {
    in_hashing_slot(move || hash_password(&password)).await?
}

/// Verify on the blocking pool, in a hashing slot.
pub async fn verify_password_async(password: String, stored: String) -> Result<bool, ApiError> {
    in_hashing_slot(move || verify_password(&password, &stored)).await
}

/// A password policy error, or nothing.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(ApiError::bad_request(
            "the password is longer than 1024 bytes",
        ));
    }
    Ok(())
}

/// A user name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "a user name has 1 to 64 letters, digits, `.`, `_`, `-` or `@`",
        ))
    }
}

/// How long an API token works when its maker does not say (days).
pub const TOKEN_DAYS_DEFAULT: u32 = 90;
/// The longest an API token may work (days).
pub const TOKEN_DAYS_MAX: u32 = 3650;

/// Check a token lifetime in days: 1 to [`TOKEN_DAYS_MAX`].
pub fn token_days(days: Option<u32>) -> Result<u32, String> {
    match days.unwrap_or(TOKEN_DAYS_DEFAULT) {
        days @ 1..=TOKEN_DAYS_MAX => Ok(days),
        days => Err(format!(
            "a token works for 1 to {TOKEN_DAYS_MAX} days, not {days}: \
             make a new one when it expires"
        )),
    }
}

/// A new API token.
#[derive(Debug)]
pub struct MadeToken {
    /// `acp_<id>_<secret>`: shown once; only its hash is stored.
    pub token: String,
    pub id: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

/// A new API token for a user, working for `days` days.
pub fn create_token(
    c: &rusqlite::Connection,
    user_id: i64,
    name: &str,
    days: u32,
) -> Result<MadeToken, db::DbError> {
    create_token_until(c, user_id, name, days, None)
}

/// A new API token for a user, working for `days` days but not past
/// `not_after` (Unix seconds): a token made with a token expires no later
/// than the token that made it, so a leaked token cannot renew itself.
pub fn create_token_until(
    c: &rusqlite::Connection,
    user_id: i64,
    name: &str,
    days: u32,
    not_after: Option<i64>,
) -> Result<MadeToken, db::DbError> {
    let id = hex::encode(random_bytes(6));
    let secret = random_string(32);
    let lifetime = i64::from(days) * 24 * 60 * 60;
    let expires_at = db::insert_token(
        c,
        &id,
        user_id,
        name,
        &sha256(secret.as_bytes()),
        lifetime,
        not_after,
    )?;
    Ok(MadeToken {
        token: format!("acp_{id}_{secret}"),
        id,
        expires_at,
    })
}

/// Split `acp_<id>_<secret>`.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("acp_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

/// A new one-time login link's token for a user (the hash is stored).
pub fn create_login_link(c: &rusqlite::Connection, user_id: i64) -> Result<String, db::DbError> {
    let token = random_string(32);
    db::insert_login_link(
        c,
        &sha256(token.as_bytes()),
        user_id,
        LOGIN_LINK_LIFETIME_SECS,
    )?;
    Ok(token)
}

/// A new browser session after a password login, started only while the
/// user's password hash is still `verified_hash` (the one the password was
/// checked against: a reset in between starts nothing). The session id for
/// the cookie, or `None`.
pub fn start_session_after_password(
    c: &rusqlite::Connection,
    user_id: i64,
    verified_hash: &str,
    address: Option<&str>,
) -> Result<Option<String>, db::DbError> {
    let id = random_string(32);
    let started = db::insert_session_if_password(
        c,
        &sha256(id.as_bytes()),
        user_id,
        verified_hash,
        SESSION_LIFETIME_SECS,
        address,
    )?;
    Ok(started.then_some(id))
}

/// Use a one-time login link (its token) and start a browser session, in
/// one transaction: its user and the session id for the cookie, or `None`
/// when the link is not live.
pub fn start_session_by_link(
    c: &mut rusqlite::Connection,
    token: &str,
    address: Option<&str>,
) -> Result<Option<(User, String)>, db::DbError> {
    let id = random_string(32);
    let user = db::consume_login_link(
        c,
        &sha256(token.as_bytes()),
        &sha256(id.as_bytes()),
        SESSION_LIFETIME_SECS,
        address,
    )?;
    Ok(user.map(|user| (user, id)))
}

/// The `Set-Cookie` value for a session: `Secure` and `__Host-` named when
/// served over https, never a `Domain`.
pub fn session_cookie(value: &str, secure: bool) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_LIFETIME_SECS}{}",
        session_cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        session_cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Authenticate a request from its headers: a bearer token first, else the
/// session cookie of the server's mode (`secure`: the `__Host-` name; a
/// cookie of the other name is not read at all). `Ok(None)` when it carries
/// neither; an error when it carries a credential that is wrong (never
/// silently anonymous).
pub async fn authenticate(
    db: &Db,
    headers: &HeaderMap,
    secure: bool,
) -> Result<Option<Principal>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ApiError::unauthorized())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(ApiError::unauthorized)?
            .trim()
            .to_string();
        let (id, secret) = parse_token(&token).ok_or_else(ApiError::unauthorized)?;
        let (id, secret_hash) = (id.to_string(), sha256(secret.as_bytes()));
        let found = db
            .call(move |c| {
                let found = db::token_lookup(c, &id)?;
                if found.is_some() {
                    db::touch_token(c, &id)?;
                }
                Ok(found.map(|f| (id, f)))
            })
            .await?;
        return match found {
            Some((id, (stored, user))) if bool::from(stored.ct_eq(&secret_hash)) => {
                Ok(Some(Principal {
                    user,
                    credential: Credential::Token(id),
                }))
            }
            _ => Err(ApiError::unauthorized()),
        };
    }
    if let Some(value) = cookie_value(headers, session_cookie_name(secure)) {
        if value.is_empty() {
            return Ok(None);
        }
        let hash = sha256(value.as_bytes());
        let lookup = hash.clone();
        let user = db.call(move |c| db::session_user(c, &lookup)).await?;
        return match user {
            Some(user) => Ok(Some(Principal {
                user,
                credential: Credential::Session(hash),
            })),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_expired",
                "the session has expired or was revoked: log in again",
            )),
        };
    }
    Ok(None)
}

/// How long after a user proved their password in a session (logging in,
/// or confirming it when asked) that session may call the routes marked
/// `recent_password` (`aicockpit serve --reauth-after`).
pub const RECENT_PASSWORD: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `403 reauth_required` unless a session's password was proved at
/// `confirmed_at` (Unix seconds) within `window` of now.
pub fn check_recent_password(
    confirmed_at: i64,
    window: std::time::Duration,
) -> Result<(), ApiError> {
    let age = db::now().saturating_sub(confirmed_at);
    // Whole seconds: a window of 0 lets through what comes in the same
    // second as the proof (the retry right after a confirmation).
    if confirmed_at > 0 && (0..=window.as_secs() as i64).contains(&age) {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "reauth_required",
        "confirm your password first (POST /api/v1/auth/confirm with {\"password\"}): \
         this needs a password proved recently in this session",
    ))
}

/// The recent-password rule for one caller: a browser session must have
/// proved its password within `window`; an API token is never asked.
pub async fn require_recent_password(
    db: &Db,
    principal: &Principal,
    window: std::time::Duration,
) -> Result<(), ApiError> {
    let Credential::Session(session) = &principal.credential else {
        return Ok(());
    };
    let session = session.clone();
    let confirmed = db
        .call(move |c| db::session_confirmed_at(c, &session))
        .await?
        .unwrap_or(0);
    check_recent_password(confirmed, window)
}

/// Whether a method changes state (and so needs the `Origin` check with cookies).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Check `Origin` against the server's own origins. Browsers always send it
/// on cross-origin requests, on non-GET fetches and on WebSocket upgrades;
/// a missing header is refused too, since only a non-browser would omit it
/// and those should use a token.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::forbidden(
                "this request uses the session cookie but has no Origin header; scripts should use an API token",
            )
        })?;
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "bad_origin",
            format!(
                "requests from {origin} may not use this server's session cookie; if the server is reached \
                 under another address, start it with --public-url"
            ),
        ))
    }
}

/// The `Host` names the server answers to: the DNS-rebinding defence. A
/// page that points its own DNS name at this server's address (127.0.0.1)
/// talks to it same-origin, but under its own name; every request under a
/// name that is not one of these is refused before any route sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Exact `host[:port]` values, lower case (`127.0.0.1:8080`,
    /// `cockpit.example.com`, `cockpit.example.com:443`).
    pub names: Vec<String>,
    /// Also `localhost` or any IP address literal at this port: for a
    /// listener reached by addresses not known in advance (a metrics
    /// listener on 0.0.0.0). A literal address cannot be rebound.
    pub literals_at_port: Option<u16>,
}

impl AllowedHosts {
    /// Whether a `Host` value (or an HTTP/2 `:authority`) is one of the server's.
    pub fn allows(&self, host: &str) -> bool {
        if self.names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
            return true;
        }
        let Some(port) = self.literals_at_port else {
            return false;
        };
        match split_host(host) {
            Some((name, Some(p))) if p == port => {
                name.eq_ignore_ascii_case("localhost")
                    || if host.starts_with('[') {
                        name.parse::<std::net::Ipv6Addr>().is_ok()
                    } else {
                        name.parse::<std::net::Ipv4Addr>().is_ok()
                    }
            }
            _ => false,
        }
    }
}

/// Split `host[:port]` (`[v6]:port` for IPv6, brackets removed); `None`
/// when the port is not a number.
pub fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        return match after {
            "" => Some((address, None)),
            _ => Some((address, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// Check the name a request was sent to (its `Host`, and the authority of
/// an absolute or HTTP/2 request target) against the server's own. A
/// foreign name is `421 wrong_host`, saying what to start the server with
/// if that name is really its; a request without any, or with two `Host`
/// headers, is `400 no_host`.
pub fn check_host(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    allowed: &AllowedHosts,
) -> Result<(), ApiError> {
    let no_host = |message: &str| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "no_host",
            message.to_string(),
        )
    };
    let mut names = Vec::new();
    let mut host_headers = headers.get_all(header::HOST).iter();
    if let Some(value) = host_headers.next() {
        names.push(value.to_str().unwrap_or("(not text)"));
    }
    if host_headers.next().is_some() {
        return Err(no_host("this request has more than one Host header"));
    }
    if let Some(authority) = uri.authority() {
        names.push(authority.as_str());
    }
    if names.is_empty() {
        return Err(no_host(
            "this request has no Host header: send the server's address in it (HTTP/1.1 does)",
        ));
    }
    for name in names {
        if !allowed.allows(name) {
            let shown: String = name.chars().take(100).collect();
            return Err(ApiError::new(
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                // The refused name is shown (cut short) as what was refused,
                // never inside the advice: it is the sender's text, and a
                // page could otherwise write the command an admin copies.
                format!(
                    "this server does not answer to the name {shown:?}; if it is reached under \
                     another address (a DNS name or a proxy in front of the server), start the \
                     server with --public-url <the URL people open>"
                ),
            ));
        }
    }
    Ok(())
}

/// Login attempts allowed per window, per user name and per address.
const LOGIN_ATTEMPTS: u32 = 10;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed logins counted per user name and per address in a sliding window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    /// The budgets an attempt counts against: the user's (when it names
    /// one) and the address's (an IPv6 address by its /64, which one
    /// attacker usually holds whole).
    fn keys(user: Option<&str>, address: Option<IpAddr>) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(user) = user {
            keys.push(format!("user:{}", user.to_lowercase()));
        }
        match address {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                keys.push(format!(
                    "addr:{:x}:{:x}:{:x}:{:x}::/64",
                    s[0], s[1], s[2], s[3]
                ));
            }
            Some(address) => keys.push(format!("addr:{address}")),
            None => {}
        }
        keys
    }

    /// Start a login attempt: `Err` with the seconds to wait when a budget
    /// is spent; otherwise the attempt is counted against every budget at
    /// once, under one lock, so concurrent guesses cannot all pass the check
    /// before any of them fails. A success gives it back ([`Self::succeeded`]).
    pub fn begin(&self, user: &str, address: Option<IpAddr>) -> Result<(), u64> {
        self.begin_keys(Self::keys(Some(user), address))
    }

    /// Start a check of a signed-in caller's password (to change it or to
    /// confirm it), under the caller's budget (`budget`:
    /// [`Principal::password_budget`]) and the address's, both apart from
    /// the login budgets. So failed logins by anyone (behind a proxy, from
    /// the same address) cannot stop the owner from changing a password,
    /// guesses here cannot lock the owner out of logging in, and a thief
    /// burning a stolen session's budget does not block the owner's next
    /// login.
    pub fn begin_own_password(&self, budget: &str, address: Option<IpAddr>) -> Result<(), u64> {
        self.begin_keys(Self::own_keys(budget, address))
    }

    fn own_keys(budget: &str, address: Option<IpAddr>) -> Vec<String> {
        let mut keys: Vec<String> = Self::keys(None, address)
            .into_iter()
            .map(|key| format!("own-{key}"))
            .collect();
        keys.push(format!("own:{budget}"));
        keys
    }

    /// The password was right: that budget is whole again and the address
    /// gets its attempt back.
    pub fn own_password_succeeded(&self, budget: &str, address: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("own:{budget}"));
        for key in Self::own_keys(budget, address)
            .into_iter()
            .filter(|key| key.starts_with("own-"))
        {
            if let Some((_, count)) = failures.get_mut(&key) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Login links name no user: only the address's budget counts, so
    /// guesses from one place cannot lock everyone out of the recovery link.
    pub fn begin_link(&self, address: Option<IpAddr>) -> Result<(), u64> {
        self.begin_keys(Self::keys(None, address))
    }

    fn begin_keys(&self, keys: Vec<String>) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        failures.retain(|_, (start, _)| now.duration_since(*start) < LOGIN_WINDOW);
        for key in &keys {
            if let Some((start, count)) = failures.get(key) {
                if *count >= LOGIN_ATTEMPTS {
                    let left = LOGIN_WINDOW.saturating_sub(now.duration_since(*start));
                    return Err(left.as_secs().max(1));
                }
            }
        }
        // Bounded: when full, forget budgets that are not spent; spent
        // ones stay until their window ends, so spraying cannot unlock them.
        if failures.len() > 100_000 {
            failures.retain(|_, (_, count)| *count >= LOGIN_ATTEMPTS);
        }
        for key in keys {
            failures.entry(key).or_insert((now, 0)).1 += 1;
        }
        Ok(())
    }

    /// The attempt succeeded: the user's budget is whole again and the
    /// address gets its attempt back.
    pub fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("user:{}", user.to_lowercase()));
        for key in Self::keys(None, address) {
            if let Some((_, count)) = failures.get_mut(&key) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// A login link worked: the address gets its attempt back.
    pub fn link_succeeded(&self, address: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in Self::keys(None, address) {
            if let Some((_, count)) = failures.get_mut(&key) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Record a failure without an attempt begun (tests, and callers that
    /// learn of a failure some other way).
    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        let _ = self.begin(user, address);
    }

    /// Whether an attempt would be refused now, without counting one.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for key in Self::keys(Some(user), address) {
            if let Some((start, count)) = failures.get(&key) {
                if *count >= LOGIN_ATTEMPTS && now.duration_since(*start) < LOGIN_WINDOW {
                    return Err(LOGIN_WINDOW
                        .saturating_sub(now.duration_since(*start))
                        .as_secs()
                        .max(1));
                }
            }
        }
        Ok(())
    }
}

/// At most this many password hashes or checks run at once (each takes
/// argon2's 19 MiB and a blocking thread); more wait briefly, then get 503.
const HASHING_SLOTS: usize = 4;

/// Run password hashing work in one of the [`HASHING_SLOTS`].
pub async fn in_hashing_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_SLOTS);
    let permit = tokio::time::timeout(Duration::from_secs(10), SLOTS.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is checking too many passwords at once; try again in a moment",
            )
            .with_retry_after(2)
        })?;
    let result = tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal);
    drop(permit);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_and_wrong_ones_fail() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_parse_only_in_their_shape() {
        assert_eq!(
            parse_token("acp_0123456789ab_sEcReT"),
            Some(("0123456789ab", "sEcReT"))
        );
        for bad in [
            "",
            "acp_",
            "acp_0123456789ab_",
            "acp_short_x",
            "xyz_0123456789ab_s",
            "acp_0123456789zz_s",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_limiter_blocks_after_the_budget_per_user_and_per_address() {
        let limiter = LoginLimiter::default();
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..LOGIN_ATTEMPTS {
            assert!(limiter.check("ada", Some(address)).is_ok());
            limiter.failed("ada", Some(address));
        }
        assert!(limiter.check("ada", None).is_err(), "per user");
        assert!(limiter.check("bob", Some(address)).is_err(), "per address");
        assert!(limiter
            .check("bob", Some("10.0.0.2".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn link_guesses_count_against_their_address_only() {
        let limiter = LoginLimiter::default();
        let guesser: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..LOGIN_ATTEMPTS {
            assert!(limiter.begin_link(Some(guesser)).is_ok());
        }
        assert!(limiter.begin_link(Some(guesser)).is_err());
        assert!(limiter
            .begin_link(Some("10.0.0.2".parse().unwrap()))
            .is_ok());
        // A user of the guesser's address is not locked by link guesses.
        assert!(limiter
            .check("ada", Some("10.0.0.3".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn attempts_count_when_they_begin_and_successes_give_them_back() {
        let limiter = LoginLimiter::default();
        let address: IpAddr = "10.0.0.9".parse().unwrap();
        // Ten attempts in flight at once spend the whole budget.
        for _ in 0..LOGIN_ATTEMPTS {
            assert!(limiter.begin("ada", Some(address)).is_ok());
        }
        assert!(limiter.begin("ada", Some(address)).is_err());
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        assert!(limiter.begin("bob", Some(other)).is_ok());
        limiter.succeeded("bob", Some(other));
        assert!(limiter.check("bob", Some(other)).is_ok());
        // IPv6 addresses of one /64 share a budget.
        let first: IpAddr = "2001:db8::1".parse().unwrap();
        for n in 0..LOGIN_ATTEMPTS {
            assert!(limiter.begin(&format!("u{n}"), Some(first)).is_ok());
        }
        let neighbour: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(limiter.begin("someone", Some(neighbour)).is_err());
    }

    #[test]
    fn hosts_must_be_the_servers_own() {
        let allowed = AllowedHosts {
            names: vec!["127.0.0.1:8080".into(), "localhost:8080".into()],
            literals_at_port: None,
        };
        let uri: axum::http::Uri = "/healthz".parse().unwrap();
        let mut headers = HeaderMap::new();
        let missing = check_host(&headers, &uri, &allowed).unwrap_err();
        assert_eq!((missing.status.as_u16(), missing.code), (400, "no_host"));
        for good in ["127.0.0.1:8080", "LOCALHOST:8080"] {
            headers.insert(header::HOST, good.parse().unwrap());
            assert!(check_host(&headers, &uri, &allowed).is_ok(), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost:8080.evil.example",
            "",
        ] {
            headers.insert(header::HOST, bad.parse().unwrap());
            let error = check_host(&headers, &uri, &allowed).unwrap_err();
            assert_eq!(
                (error.status.as_u16(), error.code),
                (421, "wrong_host"),
                "{bad}"
            );
            assert!(
                error.message.contains("--public-url <the URL people open>"),
                "{}",
                error.message
            );
            assert!(
                !error.message.contains("://"),
                "no URL built from the Host: {}",
                error.message
            );
        }
        // An absolute target's authority must be ours too, whatever Host says.
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        let absolute: axum::http::Uri = "http://evil.example/healthz".parse().unwrap();
        assert!(check_host(&headers, &absolute, &allowed).is_err());
        let own: axum::http::Uri = "http://localhost:8080/healthz".parse().unwrap();
        assert!(check_host(&headers, &own, &allowed).is_ok());
        // HTTP/2 has no Host header: the :authority alone decides.
        assert!(check_host(&HeaderMap::new(), &own, &allowed).is_ok());
    }

    #[test]
    fn host_names_split_from_their_port() {
        assert_eq!(split_host("a.example:80"), Some(("a.example", Some(80))));
        assert_eq!(split_host("a.example"), Some(("a.example", None)));
        assert_eq!(split_host("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(split_host("[::1]"), Some(("::1", None)));
        assert_eq!(split_host("a.example:http"), None);
        assert_eq!(split_host("[::1]x"), None);
    }

    #[test]
    fn the_cookie_is_host_prefixed_exactly_when_secure() {
        let secure = session_cookie("v", true);
        assert!(
            secure.starts_with("__Host-aicockpit_session=v; Path=/;"),
            "{secure}"
        );
        assert!(
            secure.ends_with("; Secure") && !secure.contains("Domain"),
            "{secure}"
        );
        let plain = session_cookie("v", false);
        assert!(plain.starts_with("aicockpit_session=v; Path=/;"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(clear_session_cookie(true).starts_with("__Host-aicockpit_session=;"));
        assert!(clear_session_cookie(false).starts_with("aicockpit_session=;"));
    }

    #[test]
    fn origins_must_match_exactly() {
        let allowed = vec!["http://127.0.0.1:8080".to_string()];
        let mut headers = HeaderMap::new();
        assert!(check_origin(&headers, &allowed).is_err(), "missing");
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(check_origin(&headers, &allowed).is_ok());
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "null",
            "http://127.0.0.1:8080.evil",
        ] {
            headers.insert(header::ORIGIN, bad.parse().unwrap());
            assert!(check_origin(&headers, &allowed).is_err(), "{bad}");
        }
    }
}
