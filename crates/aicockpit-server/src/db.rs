//! The server's state in one SQLite file under the data folder: users,
//! sessions, API tokens, one-time login links, workspace ownership and
//! sharing, and the audit log.
//!
//! Invariants: the schema only moves forward through [`MIGRATIONS`] (the
//! version is SQLite's `user_version`); secrets are stored only as SHA-256
//! hashes (passwords as argon2id PHC strings); the audit table is
//! append-only, enforced by triggers, so even a bug here cannot rewrite
//! history. All access goes through [`Db::call`], which runs the closure on
//! the blocking pool under one connection lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use rusqlite::Connection;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// The schema, one entry per version. Never edit an entry that has shipped:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE users(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions(
        id_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        address TEXT,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens(
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE login_links(
        token_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE TABLE workspaces(
        name TEXT PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE members(
        workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('editor', 'viewer')),
        PRIMARY KEY (workspace, user_id)
    );
    CREATE TABLE audit(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        user TEXT,
        address TEXT,
        action TEXT NOT NULL,
        target TEXT,
        result TEXT NOT NULL,
        request_id TEXT,
        detail TEXT
    );
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    "#,
    // 2: when a session's user last proved their password (or used a login
    // link): the recent-password rule. Sessions from before have not.
    r#"
    ALTER TABLE sessions ADD COLUMN confirmed_at INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: which workspace record a row of ownership and sharing is about.
    // Names come back: a workspace removed and made again outside the API
    // (`aicockpit workspace rm` / `create`) is another workspace, and its
    // predecessor's owner and members must not reach it. Rows from before
    // are adopted by the record of their name at the next start.
    r#"
    ALTER TABLE workspaces ADD COLUMN record_id TEXT;
    "#,
    // 4: API tokens expire. Tokens made before have none (NULL: never).
    r#"
    ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
    "#,
    // 5: who owned a workspace removed with its files kept: those files
    // count against that user's workspaces until an admin deletes them or
    // takes them up.
    r#"
    CREATE TABLE kept_files(
        name TEXT PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        dir TEXT NOT NULL,
        removed_at INTEGER NOT NULL
    );
    "#,
];

/// A database failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this aicockpit ({known}): \
         upgrade aicockpit, or restore the data folder's backup from before the upgrade"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database worker failed: {0}")]
    Worker(String),
}

/// Site-wide role of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SiteRole {
    Admin,
    Member,
    Auditor,
}

impl SiteRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteRole::Admin => "admin",
            SiteRole::Member => "member",
            SiteRole::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<SiteRole> {
        match text {
            "admin" => Some(SiteRole::Admin),
            "member" => Some(SiteRole::Member),
            "auditor" => Some(SiteRole::Auditor),
            _ => None,
        }
    }
}

/// A user's role in one workspace. Ordered: each role can do what the ones before it can.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceRole {
    Viewer,
    Editor,
    Owner,
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Viewer => "viewer",
            WorkspaceRole::Editor => "editor",
            WorkspaceRole::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<WorkspaceRole> {
        match text {
            "viewer" => Some(WorkspaceRole::Viewer),
            "editor" => Some(WorkspaceRole::Editor),
            "owner" => Some(WorkspaceRole::Owner),
            _ => None,
        }
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: SiteRole,
    pub created_at: i64,
}

/// An API token's public part.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// When it stops working (Unix seconds); `null` for a token made before
    /// tokens expired, which never does.
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// A workspace member.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Member {
    pub user: String,
    pub role: WorkspaceRole,
}

/// One audit record.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    /// Unix milliseconds.
    pub time_ms: i64,
    pub user: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub result: String,
    pub request_id: Option<String>,
    /// Redacted request detail (JSON), if any.
    pub detail: Option<String>,
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub after_seq: Option<i64>,
    pub user: Option<String>,
    pub action: Option<String>,
    pub limit: usize,
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Open (creating if needed, mode 0600) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open_error = |source| DbError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        // The file holds hashes and the audit log: only its owner reads it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path);
        }
        let mut connection = Connection::open(path).map_err(open_error)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            )
            .map_err(open_error)?;
        migrate(&mut connection, path)?;
        Ok(Db {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `work` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(|e| DbError::Worker(e.to_string()))?
    }

    /// Run `work` on the calling thread (CLI commands, start-up).
    pub fn call_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut guard = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        work(&mut guard)
    }

    /// Flush the write-ahead log into the main file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.call_blocking(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok(())
        })
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        transaction.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(2)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: SiteRole::parse(&role).unwrap_or(SiteRole::Member),
        created_at: row.get(3)?,
    })
}

// Queries. Each takes a connection so callers compose them in one `call`.

pub fn user_count(c: &Connection) -> Result<i64, DbError> {
    Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

pub fn create_user(
    c: &Connection,
    name: &str,
    password_hash: Option<&str>,
    role: SiteRole,
) -> Result<User, DbError> {
    c.execute(
        "INSERT INTO users(name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, password_hash, role.as_str(), now()],
    )?;
    let id = c.last_insert_rowid();
    Ok(User {
        id,
        name: name.to_string(),
        role,
        created_at: now(),
    })
}

pub fn user_by_name(c: &Connection, name: &str) -> Result<Option<User>, DbError> {
    Ok(c.query_row(
        "SELECT id, name, role, created_at FROM users WHERE name = ?1",
        [name],
        user_from_row,
    )
    .optional()?)
}

pub fn user_by_id(c: &Connection, id: i64) -> Result<Option<User>, DbError> {
    Ok(c.query_row(
        "SELECT id, name, role, created_at FROM users WHERE id = ?1",
        [id],
        user_from_row,
    )
    .optional()?)
}

pub fn first_admin(c: &Connection) -> Result<Option<User>, DbError> {
    Ok(c.query_row(
        "SELECT id, name, role, created_at FROM users WHERE role = 'admin' ORDER BY id LIMIT 1",
        [],
        user_from_row,
    )
    .optional()?)
}

pub fn list_users(c: &Connection) -> Result<Vec<User>, DbError> {
    let mut statement = c.prepare("SELECT id, name, role, created_at FROM users ORDER BY id")?;
    let rows = statement.query_map([], user_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn password_hash(c: &Connection, user_id: i64) -> Result<Option<String>, DbError> {
    Ok(c.query_row(
        "SELECT password_hash FROM users WHERE id = ?1",
        [user_id],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten())
}

pub fn set_password_hash(c: &Connection, user_id: i64, hash: &str) -> Result<(), DbError> {
    c.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, user_id],
    )?;
    Ok(())
}

pub fn set_role(c: &Connection, user_id: i64, role: SiteRole) -> Result<(), DbError> {
    c.execute(
        "UPDATE users SET role = ?1 WHERE id = ?2",
        params![role.as_str(), user_id],
    )?;
    Ok(())
}

pub fn delete_user(c: &Connection, user_id: i64) -> Result<bool, DbError> {
    Ok(c.execute("DELETE FROM users WHERE id = ?1", [user_id])? > 0)
}

/// Revoke every session of a user (password reset, role change, deletion),
/// expired ones too, so none is left unrevoked; how many were live (for the
/// audit record).
pub fn revoke_sessions_of(c: &Connection, user_id: i64) -> Result<usize, DbError> {
    revoke_sessions_where(c, user_id)
}

fn revoke_sessions_where(c: &Connection, user_id: i64) -> Result<usize, DbError> {
    atomically(c, |c| {
        let live: i64 = c.query_row(
            "SELECT count(*) FROM sessions WHERE user_id = ?1 AND revoked = 0 AND expires_at > ?2",
            params![user_id, now()],
            |r| r.get(0),
        )?;
        c.execute(
            "UPDATE sessions SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
            params![user_id],
        )?;
        Ok(live as usize)
    })
}

/// Revoke every live API token of a user; how many were live.
pub fn revoke_tokens_of(c: &Connection, user_id: i64) -> Result<usize, DbError> {
    Ok(c.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL",
        params![now(), user_id],
    )?)
}

/// Forget every one-time login link of a user; how many could still have been used.
pub fn revoke_login_links_of(c: &Connection, user_id: i64) -> Result<usize, DbError> {
    let live: i64 = c.query_row(
        "SELECT count(*) FROM login_links WHERE user_id = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![user_id, now()],
        |r| r.get(0),
    )?;
    c.execute("DELETE FROM login_links WHERE user_id = ?1", [user_id])?;
    Ok(live as usize)
}

/// Who changes a password, which decides what else ends with the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordChange {
    /// The user themselves: every session and login link of theirs ends
    /// (the caller's browser gets a new session: a thief's copy of its
    /// cookie dies with the old one); their API tokens, which they manage
    /// themselves, only if they ask.
    Own { end_tokens: bool },
    /// Someone else (an admin, `aicockpit admin reset-password`), which
    /// signals a compromised or lost account: every session, API token and
    /// login link of the user ends, so nothing an intruder made survives.
    Reset,
}

/// What ended with a password change or a deletion (for the audit log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Revoked {
    pub sessions: usize,
    pub tokens: usize,
    pub login_links: usize,
}

/// Run `work` all or nothing, in a savepoint: unlike a transaction it
/// nests, so it also works inside a caller's transaction (a handler's
/// [`crate::auth::call_as_live`]).
pub fn atomically<T>(
    c: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    c.execute_batch("SAVEPOINT atomically")?;
    match work(c) {
        Ok(value) => {
            c.execute_batch("RELEASE atomically")?;
            Ok(value)
        }
        Err(error) => {
            let _ = c.execute_batch("ROLLBACK TO atomically; RELEASE atomically");
            Err(error)
        }
    }
}

/// Set a user's password and end what [`PasswordChange`] says, all or nothing.
pub fn change_password(
    c: &Connection,
    user_id: i64,
    hash: &str,
    how: PasswordChange,
) -> Result<Revoked, DbError> {
    atomically(c, |c| {
        set_password_hash(c, user_id, hash)?;
        Ok(match how {
            PasswordChange::Own { end_tokens } => Revoked {
                sessions: revoke_sessions_of(c, user_id)?,
                tokens: if end_tokens {
                    revoke_tokens_of(c, user_id)?
                } else {
                    0
                },
                login_links: revoke_login_links_of(c, user_id)?,
            },
            PasswordChange::Reset => revoke_credentials_of(c, user_id)?,
        })
    })
}

/// End every session, API token and login link of a user (an admin's
/// password reset, a deletion).
pub fn revoke_credentials_of(c: &Connection, user_id: i64) -> Result<Revoked, DbError> {
    Ok(Revoked {
        sessions: revoke_sessions_of(c, user_id)?,
        tokens: revoke_tokens_of(c, user_id)?,
        login_links: revoke_login_links_of(c, user_id)?,
    })
}

pub fn insert_session(
    c: &Connection,
    id_hash: &[u8],
    user_id: i64,
    lifetime_secs: i64,
    address: Option<&str>,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO sessions(id_hash, user_id, created_at, expires_at, address, confirmed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
        params![id_hash, user_id, now(), now() + lifetime_secs, address],
    )?;
    Ok(())
}

/// Start a session only while the user's password hash is still
/// `verified_hash`, the one a login just checked the password against: a
/// reset that lands between the check and this finds nothing to start.
/// False when no session was started.
pub fn insert_session_if_password(
    c: &Connection,
    id_hash: &[u8],
    user_id: i64,
    verified_hash: &str,
    lifetime_secs: i64,
    address: Option<&str>,
) -> Result<bool, DbError> {
    Ok(c.execute(
        "INSERT INTO sessions(id_hash, user_id, created_at, expires_at, address, confirmed_at) \
         SELECT ?1, id, ?3, ?4, ?5, ?3 FROM users WHERE id = ?2 AND password_hash = ?6",
        params![
            id_hash,
            user_id,
            now(),
            now() + lifetime_secs,
            address,
            verified_hash
        ],
    )? > 0)
}

/// When the user of a live session last proved their password (or used a
/// login link) in it, in Unix seconds; `None` for no live session.
pub fn session_confirmed_at(c: &Connection, id_hash: &[u8]) -> Result<Option<i64>, DbError> {
    Ok(c.query_row(
        "SELECT confirmed_at FROM sessions WHERE id_hash = ?1 AND revoked = 0 AND expires_at > ?2",
        params![id_hash, now()],
        |r| r.get(0),
    )
    .optional()?)
}

/// Record that the user of a live session has just proved their password
/// again, if that password is still `verified_hash`; whether it was.
pub fn confirm_session(
    c: &Connection,
    id_hash: &[u8],
    verified_hash: &str,
) -> Result<bool, DbError> {
    Ok(c.execute(
        "UPDATE sessions SET confirmed_at = ?2 WHERE id_hash = ?1 AND revoked = 0 AND expires_at > ?2 \
         AND user_id IN (SELECT id FROM users WHERE password_hash = ?3)",
        params![id_hash, now(), verified_hash],
    )? > 0)
}

/// The user of a live (unexpired, unrevoked) session.
pub fn session_user(c: &Connection, id_hash: &[u8]) -> Result<Option<User>, DbError> {
    Ok(c
        .query_row(
            "SELECT u.id, u.name, u.role, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = ?1 AND s.revoked = 0 AND s.expires_at > ?2",
            params![id_hash, now()],
            user_from_row,
        )
        .optional()?)
}

/// Whether a session is still live (unexpired, unrevoked) for a user who
/// still exists under the same name and role.
pub fn session_is_live(c: &Connection, id_hash: &[u8], user: &User) -> Result<bool, DbError> {
    Ok(c.query_row(
        "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = ?1 AND s.user_id = ?2 AND s.revoked = 0 AND s.expires_at > ?3 \
             AND u.name = ?4 AND u.role = ?5",
        params![id_hash, user.id, now(), user.name, user.role.as_str()],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Whether an API token is still live (unrevoked, unexpired) for a user who
/// still exists under the same name and role.
pub fn token_is_live(c: &Connection, id: &str, user: &User) -> Result<bool, DbError> {
    Ok(c.query_row(
        "SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.id = ?1 AND t.user_id = ?2 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > ?5) \
             AND u.name = ?3 AND u.role = ?4",
        params![id, user.id, user.name, user.role.as_str(), now()],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

pub fn revoke_session(c: &Connection, id_hash: &[u8]) -> Result<(), DbError> {
    c.execute(
        "UPDATE sessions SET revoked = 1 WHERE id_hash = ?1",
        [id_hash],
    )?;
    Ok(())
}

/// Store a token's hash; it stops working `lifetime_secs` from now, or at
/// `not_after` if that is sooner, which is returned (Unix seconds).
pub fn insert_token(
    c: &Connection,
    id: &str,
    user_id: i64,
    name: &str,
    secret_hash: &[u8],
    lifetime_secs: i64,
    not_after: Option<i64>,
) -> Result<i64, DbError> {
    let now = now();
    let expires_at = now
        .saturating_add(lifetime_secs)
        .min(not_after.unwrap_or(i64::MAX));
    c.execute(
        "INSERT INTO tokens(id, user_id, name, secret_hash, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, name, secret_hash, now, expires_at],
    )?;
    Ok(expires_at)
}

/// When token `id` expires (`Some(None)`: never, a token from before
/// tokens expired); `None` when there is no such token.
pub fn token_expires_at(c: &Connection, id: &str) -> Result<Option<Option<i64>>, DbError> {
    Ok(
        c.query_row("SELECT expires_at FROM tokens WHERE id = ?1", [id], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()?,
    )
}

/// A live (unrevoked, unexpired) token's stored hash and its user.
pub fn token_lookup(c: &Connection, id: &str) -> Result<Option<(Vec<u8>, User)>, DbError> {
    Ok(c
        .query_row(
            "SELECT t.secret_hash, u.id, u.name, u.role, u.created_at FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.id = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![id, now()],
            |row| {
                let hash: Vec<u8> = row.get(0)?;
                let role: String = row.get(3)?;
                Ok((
                    hash,
                    User {
                        id: row.get(1)?,
                        name: row.get(2)?,
                        role: SiteRole::parse(&role).unwrap_or(SiteRole::Member),
                        created_at: row.get(4)?,
                    },
                ))
            },
        )
        .optional()?)
}

pub fn touch_token(c: &Connection, id: &str) -> Result<(), DbError> {
    c.execute(
        "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2",
        params![now(), id],
    )?;
    Ok(())
}

pub fn list_tokens(c: &Connection, user_id: i64) -> Result<Vec<TokenInfo>, DbError> {
    let mut statement = c.prepare(
        "SELECT id, name, created_at, last_used_at, revoked_at IS NOT NULL, expires_at FROM tokens WHERE user_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = statement.query_map([user_id], |row| {
        Ok(TokenInfo {
            id: row.get(0)?,
            name: row.get(1)?,
            created_at: row.get(2)?,
            last_used_at: row.get(3)?,
            expires_at: row.get(5)?,
            revoked: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revoke a token of `user_id`; false when there is no such live token.
pub fn revoke_token(c: &Connection, user_id: i64, id: &str) -> Result<bool, DbError> {
    Ok(c.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
        params![now(), id, user_id],
    )? > 0)
}

pub fn insert_login_link(
    c: &Connection,
    token_hash: &[u8],
    user_id: i64,
    lifetime_secs: i64,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO login_links(token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
        params![token_hash, user_id, now() + lifetime_secs],
    )?;
    Ok(())
}

/// Use a one-time login link and start its session (`session_hash`, the
/// hash of the new session's id) in the same transaction, so a reset or
/// deletion either ends the link first or ends the session it started: its
/// user, if the link was live; it is dead afterwards either way.
pub fn consume_login_link(
    c: &mut Connection,
    token_hash: &[u8],
    session_hash: &[u8],
    lifetime_secs: i64,
    address: Option<&str>,
) -> Result<Option<User>, DbError> {
    let transaction = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let user_id: Option<i64> = transaction
        .query_row(
            "SELECT user_id FROM login_links WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
            params![token_hash, now()],
            |r| r.get(0),
        )
        .optional()?;
    transaction.execute(
        "UPDATE login_links SET used_at = ?1 WHERE token_hash = ?2",
        params![now(), token_hash],
    )?;
    let user = match user_id {
        Some(id) => user_by_id(&transaction, id)?,
        None => None,
    };
    if let Some(user) = &user {
        insert_session(&transaction, session_hash, user.id, lifetime_secs, address)?;
    }
    transaction.commit()?;
    Ok(user)
}

/// Give a workspace with no row (made outside the API) an owner; a row that
/// is already there stays.
pub fn insert_workspace(
    c: &Connection,
    name: &str,
    owner_id: i64,
    record_id: &str,
) -> Result<(), DbError> {
    c.execute(
        "INSERT OR IGNORE INTO workspaces(name, owner_id, created_at, record_id) VALUES (?1, ?2, ?3, ?4)",
        params![name, owner_id, now(), record_id],
    )?;
    Ok(())
}

/// Record a workspace just created under `name` (record `record_id`), owned
/// by `owner_id`. Any row left by an earlier workspace of that name
/// (removed behind the server's back, with `aicockpit workspace rm`) goes
/// first, with its members: they must not inherit the new one.
pub fn claim_workspace(
    c: &Connection,
    name: &str,
    owner_id: i64,
    record_id: &str,
) -> Result<(), DbError> {
    let transaction = c.unchecked_transaction()?;
    transaction.execute("DELETE FROM workspaces WHERE name = ?1", [name])?;
    // A new workspace of the name takes up files kept under it.
    transaction.execute("DELETE FROM kept_files WHERE name = ?1", [name])?;
    transaction.execute(
        "INSERT INTO workspaces(name, owner_id, created_at, record_id) VALUES (?1, ?2, ?3, ?4)",
        params![name, owner_id, now(), record_id],
    )?;
    transaction.commit()?;
    Ok(())
}

/// Make the rows agree with the workspace records there are now (`live`:
/// name → record id): rows of names without a record, or of another record
/// of the name (a workspace removed and made again outside the API), go
/// with their members; a row from before record ids were kept is adopted
/// by its name's record. Run where no workspace is being created (at start,
/// and under the creation lock). Returns the names whose rows went.
pub fn reconcile_workspaces(
    c: &Connection,
    live: &std::collections::HashMap<String, String>,
) -> Result<Vec<String>, DbError> {
    let transaction = c.unchecked_transaction()?;
    let rows: Vec<(String, Option<String>)> = {
        let mut statement = transaction.prepare("SELECT name, record_id FROM workspaces")?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows
    };
    let mut gone = Vec::new();
    for (name, record_id) in rows {
        match (live.get(&name), record_id) {
            (Some(id), None) => {
                transaction.execute(
                    "UPDATE workspaces SET record_id = ?2 WHERE name = ?1",
                    params![name, id],
                )?;
            }
            (Some(id), Some(record_id)) if *id == record_id => {}
            _ => {
                transaction.execute("DELETE FROM workspaces WHERE name = ?1", [&name])?;
                gone.push(name);
            }
        }
    }
    transaction.commit()?;
    Ok(gone)
}

/// Forget a removed workspace's rows; when its files were kept (in
/// `kept_dir`), note whose they were (they count against that user's
/// workspaces while the folder is there).
pub fn remove_workspace(c: &Connection, name: &str, kept_dir: Option<&str>) -> Result<(), DbError> {
    let transaction = c.unchecked_transaction()?;
    if let Some(dir) = kept_dir {
        transaction.execute(
            "INSERT OR REPLACE INTO kept_files(name, owner_id, dir, removed_at) \
             SELECT name, owner_id, ?2, ?3 FROM workspaces WHERE name = ?1",
            params![name, dir, now()],
        )?;
    }
    transaction.execute("DELETE FROM workspaces WHERE name = ?1", [name])?;
    transaction.commit()?;
    Ok(())
}

/// The removed workspaces of `user_id` whose files were kept: name and the
/// folder the files were kept in.
pub fn kept_files_of(c: &Connection, user_id: i64) -> Result<Vec<(String, String)>, DbError> {
    let mut statement =
        c.prepare("SELECT name, dir FROM kept_files WHERE owner_id = ?1 ORDER BY name")?;
    let rows = statement.query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forget that `name`'s kept files were someone's (they are gone, or a new
/// workspace of the name took them up).
pub fn forget_kept_files(c: &Connection, name: &str) -> Result<(), DbError> {
    c.execute("DELETE FROM kept_files WHERE name = ?1", [name])?;
    Ok(())
}

/// The SQL condition that a `workspaces` row (as `w`) is about record `?2`:
/// a row of a predecessor of the name grants nothing (rows from before
/// record ids were kept, none after the first start, count as the name's).
const SAME_RECORD: &str = "(w.record_id IS NULL OR w.record_id = ?2)";

/// The owner of the workspace record `record_id` named `name`.
pub fn workspace_owner(
    c: &Connection,
    name: &str,
    record_id: &str,
) -> Result<Option<User>, DbError> {
    Ok(c
        .query_row(
            &format!(
                "SELECT u.id, u.name, u.role, u.created_at FROM workspaces w JOIN users u ON u.id = w.owner_id \
                 WHERE w.name = ?1 AND {SAME_RECORD}"
            ),
            params![name, record_id],
            user_from_row,
        )
        .optional()?)
}

/// A user's role in the workspace record `record_id` named `name`: owner,
/// a member's role, or none (also when the rows are a predecessor's).
pub fn workspace_role(
    c: &Connection,
    name: &str,
    record_id: &str,
    user_id: i64,
) -> Result<Option<WorkspaceRole>, DbError> {
    let owner: Option<i64> = c
        .query_row(
            &format!("SELECT owner_id FROM workspaces w WHERE w.name = ?1 AND {SAME_RECORD}"),
            params![name, record_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    if owner == user_id {
        return Ok(Some(WorkspaceRole::Owner));
    }
    let role: Option<String> = c
        .query_row(
            "SELECT role FROM members WHERE workspace = ?1 AND user_id = ?2",
            params![name, user_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(role.as_deref().and_then(WorkspaceRole::parse))
}

/// How many workspaces `user_id` owns.
pub fn owned_count(c: &Connection, user_id: i64) -> Result<u64, DbError> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM workspaces WHERE owner_id = ?1",
        [user_id],
        |row| row.get::<_, i64>(0),
    )? as u64)
}

/// Workspaces a user owns or is a member of: name, the record id of the
/// row (none from before ids were kept) and the role.
pub fn workspaces_of(
    c: &Connection,
    user_id: i64,
) -> Result<Vec<(String, Option<String>, WorkspaceRole)>, DbError> {
    let mut statement = c.prepare(
        "SELECT name, record_id, 'owner' FROM workspaces WHERE owner_id = ?1 \
         UNION SELECT m.workspace, w.record_id, m.role FROM members m \
         JOIN workspaces w ON w.name = m.workspace WHERE m.user_id = ?1 ORDER BY 1",
    )?;
    let rows = statement.query_map([user_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, record_id, role) = row?;
        if let Some(role) = WorkspaceRole::parse(&role) {
            out.push((name, record_id, role));
        }
    }
    Ok(out)
}

pub fn members(c: &Connection, workspace: &str) -> Result<Vec<Member>, DbError> {
    let mut statement = c.prepare(
        "SELECT u.name, m.role FROM members m JOIN users u ON u.id = m.user_id WHERE m.workspace = ?1 ORDER BY u.name",
    )?;
    let rows = statement.query_map([workspace], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (user, role) = row?;
        if let Some(role) = WorkspaceRole::parse(&role) {
            out.push(Member { user, role });
        }
    }
    Ok(out)
}

/// Replace a workspace's member list, all or nothing.
pub fn set_members(
    c: &Connection,
    workspace: &str,
    members: &[(i64, WorkspaceRole)],
) -> Result<(), DbError> {
    atomically(c, |c| {
        c.execute("DELETE FROM members WHERE workspace = ?1", [workspace])?;
        for (user_id, role) in members {
            c.execute(
                "INSERT INTO members(workspace, user_id, role) VALUES (?1, ?2, ?3)",
                params![workspace, user_id, role.as_str()],
            )?;
        }
        Ok(())
    })
}

pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>, DbError> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The audit record of something done with `aicockpit admin` on the
/// server's host (no signed-in user, no address): `via` names the command.
pub fn append_host_audit(
    c: &Connection,
    action: &str,
    target: String,
    via: &str,
    mut detail: serde_json::Value,
) -> Result<i64, DbError> {
    if let Some(fields) = detail.as_object_mut() {
        fields.insert("via".into(), via.into());
    } else {
        detail = serde_json::json!({ "via": via });
    }
    append_audit(
        c,
        &AuditRecord {
            action: action.into(),
            target: Some(target),
            result: "ok".into(),
            detail: Some(detail.to_string()),
            ..AuditRecord::default()
        },
    )
}

pub fn append_audit(c: &Connection, record: &AuditRecord) -> Result<i64, DbError> {
    c.execute(
        "INSERT INTO audit(time_ms, user, address, action, target, result, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            if record.time_ms > 0 {
                record.time_ms
            } else {
                now_ms()
            },
            record.user,
            record.address,
            record.action,
            record.target,
            record.result,
            record.request_id,
            record.detail,
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn read_audit(c: &Connection, query: &AuditQuery) -> Result<Vec<AuditRecord>, DbError> {
    let mut statement = c.prepare(
        "SELECT seq, time_ms, user, address, action, target, result, request_id, detail FROM audit \
         WHERE seq > ?1 AND (?2 IS NULL OR user = ?2) AND (?3 IS NULL OR action = ?3) \
         ORDER BY seq LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            query.after_seq.unwrap_or(0),
            query.user,
            query.action,
            query.limit.clamp(1, 10_000) as i64
        ],
        |row| {
            Ok(AuditRecord {
                seq: row.get(0)?,
                time_ms: row.get(1)?,
                user: row.get(2)?,
                address: row.get(3)?,
                action: row.get(4)?,
                target: row.get(5)?,
                result: row.get(6)?,
                request_id: row.get(7)?,
                detail: row.get(8)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        let db = Db::open(&path).unwrap();
        db.call_blocking(|c| {
            let user = create_user(c, "ada", None, SiteRole::Admin)?;
            append_audit(
                c,
                &AuditRecord {
                    user: Some(user.name),
                    action: "test".into(),
                    result: "ok".into(),
                    ..AuditRecord::default()
                },
            )?;
            Ok(())
        })
        .unwrap();
        drop(db);
        // Reopening does not migrate again, and keeps the data.
        let db = Db::open(&path).unwrap();
        let (users, update, delete) = db
            .call_blocking(|c| {
                Ok((
                    user_count(c)?,
                    c.execute("UPDATE audit SET result = 'forged'", []).is_err(),
                    c.execute("DELETE FROM audit", []).is_err(),
                ))
            })
            .unwrap();
        assert_eq!(users, 1);
        assert!(update, "an UPDATE of the audit log must fail");
        assert!(delete, "a DELETE from the audit log must fail");
        let records = db
            .call_blocking(|c| {
                read_audit(
                    c,
                    &AuditQuery {
                        limit: 10,
                        ..AuditQuery::default()
                    },
                )
            })
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].result, "ok");
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 999")
            .unwrap();
        let error = Db::open(&path).err().unwrap().to_string();
        assert!(error.contains("newer than this aicockpit"), "{error}");
    }

    #[test]
    fn a_claimed_name_drops_the_old_owner_and_members() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let (owner, members, old_role) = db
            .call_blocking(|c| {
                let old = create_user(c, "old", None, SiteRole::Member)?;
                let guest = create_user(c, "guest", None, SiteRole::Member)?;
                let new = create_user(c, "new", None, SiteRole::Member)?;
                insert_workspace(c, "w", old.id, "rec-1")?;
                c.execute(
                    "INSERT INTO members(workspace, user_id, role) VALUES ('w', ?1, 'editor')",
                    [guest.id],
                )?;
                claim_workspace(c, "w", new.id, "rec-2")?;
                Ok((
                    workspace_owner(c, "w", "rec-2")?.map(|u| u.name),
                    members(c, "w")?,
                    workspace_role(c, "w", "rec-2", old.id)?,
                ))
            })
            .unwrap();
        assert_eq!(owner.as_deref(), Some("new"));
        assert!(members.is_empty(), "{members:?}");
        assert_eq!(old_role, None);
    }

    /// Rows are about one record of a name: another record of it (made
    /// again outside the API) gets no role from them, and reconciling with
    /// the records there are drops them, adopts rows from before record
    /// ids, and keeps the rest.
    #[test]
    fn rows_of_another_record_of_the_name_grant_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        db.call_blocking(|c| {
            let ada = create_user(c, "ada", None, SiteRole::Member)?;
            let vic = create_user(c, "vic", None, SiteRole::Member)?;
            insert_workspace(c, "w", ada.id, "rec-1")?;
            set_members(c, "w", &[(vic.id, WorkspaceRole::Viewer)])?;
            assert_eq!(
                workspace_role(c, "w", "rec-1", ada.id)?,
                Some(WorkspaceRole::Owner)
            );
            assert_eq!(
                workspace_role(c, "w", "rec-1", vic.id)?,
                Some(WorkspaceRole::Viewer)
            );
            assert_eq!(workspace_role(c, "w", "rec-2", ada.id)?, None);
            assert_eq!(workspace_role(c, "w", "rec-2", vic.id)?, None);
            assert!(workspace_owner(c, "w", "rec-2")?.is_none());

            // A row from before record ids: the name's record adopts it.
            insert_workspace(c, "legacy", ada.id, "x")?;
            insert_workspace(c, "gone", ada.id, "rec-9")?;
            c.execute(
                "UPDATE workspaces SET record_id = NULL WHERE name = 'legacy'",
                [],
            )?;
            let live: std::collections::HashMap<String, String> = [
                ("w".to_string(), "rec-2".to_string()),
                ("legacy".to_string(), "rec-3".to_string()),
            ]
            .into();
            let mut gone = reconcile_workspaces(c, &live)?;
            gone.sort();
            assert_eq!(gone, ["gone", "w"]);
            assert!(members(c, "w")?.is_empty());
            assert_eq!(
                workspace_role(c, "legacy", "rec-3", ada.id)?,
                Some(WorkspaceRole::Owner)
            );
            assert_eq!(workspace_role(c, "legacy", "rec-4", ada.id)?, None);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_login_link_works_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let (first, second) = db
            .call_blocking(|c| {
                let user = create_user(c, "ada", None, SiteRole::Admin)?;
                insert_login_link(c, b"hash", user.id, 60)?;
                Ok((
                    consume_login_link(c, b"hash", b"s1", 60, None)?,
                    consume_login_link(c, b"hash", b"s2", 60, None)?,
                ))
            })
            .unwrap();
        assert_eq!(first.map(|u| u.name).as_deref(), Some("ada"));
        assert!(second.is_none());
        let (started, not_started) = db
            .call_blocking(|c| Ok((session_user(c, b"s1")?, session_user(c, b"s2")?)))
            .unwrap();
        assert_eq!(started.map(|u| u.name).as_deref(), Some("ada"));
        assert!(not_started.is_none());
    }

    /// A reset marks every session revoked, expired ones too, and counts
    /// only the live ones.
    #[test]
    fn a_reset_revokes_expired_sessions_too_and_counts_the_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let (revoked, unrevoked) = db
            .call_blocking(|c| {
                let user = create_user(c, "ada", Some("old-hash"), SiteRole::Member)?;
                insert_session(c, b"live", user.id, 60, None)?;
                insert_session(c, b"expired", user.id, -60, None)?;
                let revoked = change_password(c, user.id, "new-hash", PasswordChange::Reset)?;
                let unrevoked: i64 =
                    c.query_row("SELECT count(*) FROM sessions WHERE revoked = 0", [], |r| {
                        r.get(0)
                    })?;
                Ok((revoked, unrevoked))
            })
            .unwrap();
        assert_eq!(revoked.sessions, 1, "only the live session is counted");
        assert_eq!(unrevoked, 0, "the expired session is marked revoked too");
    }

    /// A login checks the password against the hash it read, slowly; a
    /// reset may land before it starts the session. Then no session starts.
    #[test]
    fn a_login_checked_against_a_hash_a_reset_replaced_starts_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let (before, after, live) = db
            .call_blocking(|c| {
                let user = create_user(c, "ada", Some("old-hash"), SiteRole::Member)?;
                // The login read "old-hash" and verified the password against it.
                let verified = password_hash(c, user.id)?.unwrap();
                let before = insert_session_if_password(c, b"first", user.id, &verified, 60, None)?;
                change_password(c, user.id, "new-hash", PasswordChange::Reset)?;
                let after = insert_session_if_password(c, b"second", user.id, &verified, 60, None)?;
                Ok((before, after, session_user(c, b"second")?))
            })
            .unwrap();
        assert!(before, "with the hash unchanged the session starts");
        assert!(!after, "after the reset it must not");
        assert!(live.is_none());
    }

    /// A login link consumed after a reset starts nothing; one consumed
    /// before it started a session the reset then ended.
    #[test]
    fn a_login_link_and_its_session_end_together_with_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.db")).unwrap();
        let (used_before, after_reset, late) = db
            .call_blocking(|c| {
                let user = create_user(c, "ada", Some("old-hash"), SiteRole::Member)?;
                insert_login_link(c, b"early", user.id, 60)?;
                insert_login_link(c, b"late", user.id, 60)?;
                consume_login_link(c, b"early", b"s-early", 60, None)?;
                change_password(c, user.id, "new-hash", PasswordChange::Reset)?;
                Ok((
                    session_user(c, b"s-early")?,
                    consume_login_link(c, b"late", b"s-late", 60, None)?,
                    session_user(c, b"s-late")?,
                ))
            })
            .unwrap();
        assert!(used_before.is_none(), "the reset ended the link's session");
        assert!(after_reset.is_none(), "the reset ended the link");
        assert!(late.is_none());
    }
}
