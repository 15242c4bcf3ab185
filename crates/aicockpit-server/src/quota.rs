//! What one user may hold at once: workspaces they own, with the kept files
//! of those they removed (`workspaces.max_per_user`, checked where the API
//! creates or restores one), long-lived connections
//! (`workspaces.max_connections_per_user`: language-server sessions,
//! terminal connections, chat streams and exec runs, each of which holds
//! memory and a task) and terminal shells (`workspaces.max_terminals_per_user`:
//! each is a process in the workspace and a stream on the server, and lives
//! on for `terminal_idle_minutes` after its last connection closes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Something counted per user id: open connections, or live terminal shells.
#[derive(Clone, Debug)]
pub struct Connections {
    open: Arc<Mutex<HashMap<i64, u32>>>,
    kind: Kind,
}

/// What a [`Connections`] counts, for its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Long-lived requests (`workspaces.max_connections_per_user`).
    Connections,
    /// Terminal shells (`workspaces.max_terminals_per_user`).
    Terminals,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections::new(Kind::Connections)
    }
}

/// One connection counted against its user until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<Mutex<HashMap<i64, u32>>>,
    user_id: i64,
}

impl Connections {
    pub fn new(kind: Kind) -> Connections {
        Connections {
            open: Arc::default(),
            kind,
        }
    }

    /// Count one more of `user_id`'s, or refuse it with a 429 when the user
    /// already holds `limit`.
    pub fn acquire(&self, user_id: i64, limit: u32) -> Result<ConnectionSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user_id).or_insert(0);
        if *count >= limit {
            let held = *count;
            let (code, message) = match self.kind {
                Kind::Connections => (
                    "too_many_connections",
                    format!(
                        "you hold {held} open connections (language-server sessions, terminal \
                         connections, chat streams and exec runs), the most this server allows \
                         one user (workspaces.max_connections_per_user): close an editor tab or \
                         a terminal, or wait for a chat or command to end, then try again"
                    ),
                ),
                Kind::Terminals => (
                    "too_many_terminals",
                    format!(
                        "you have {held} terminal shells open, the most this server allows one \
                         user (workspaces.max_terminals_per_user); a shell lives on for \
                         workspaces.terminal_idle_minutes after its last window closes: \
                         reattach to one (GET …/terminals lists them) or end one with `exit`"
                    ),
                ),
            };
            return Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_retry_after(5)
            );
        }
        *count += 1;
        Ok(ConnectionSlot {
            open: self.open.clone(),
            user_id,
        })
    }

    /// How many connections `user_id` holds now.
    pub fn held(&self, user_id: i64) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&user_id).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// Refuse (403 `workspace_quota`) one more workspace for a user who is not an
/// admin and already holds `owned` workspaces and `kept` removed ones' kept
/// files, of at most `limit` (0: no limit).
pub fn check_workspaces(owned: u64, kept: u64, limit: u32, admin: bool) -> Result<(), ApiError> {
    if admin || limit == 0 || owned + kept < u64::from(limit) {
        return Ok(());
    }
    let kept_part = if kept == 0 {
        String::new()
    } else {
        format!(
            " and the kept files of {kept} you removed (they stay on the server's disk until \
             an admin deletes them; remove with ?purge=true to delete the files too)"
        )
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "workspace_quota",
        format!(
            "you own {owned} workspaces{kept_part}, the most this server allows one user \
             (workspaces.max_per_user = {limit}): remove one you no longer need, \
             or ask an admin to raise the limit"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_user_and_given_back_when_dropped() {
        let connections = Connections::default();
        let first = connections.acquire(1, 2).unwrap();
        let _second = connections.acquire(1, 2).unwrap();
        let refused = connections.acquire(1, 2).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "too_many_connections");
        assert!(refused.message.contains("max_connections_per_user"));
        let shells = Connections::new(Kind::Terminals);
        let _shell = shells.acquire(1, 1).unwrap();
        let refused = shells.acquire(1, 1).unwrap_err();
        assert_eq!(refused.code, "too_many_terminals");
        assert!(refused.message.contains("max_terminals_per_user"));
        // Another user has a budget of their own.
        let _other = connections.acquire(2, 2).unwrap();
        drop(first);
        assert_eq!(connections.held(1), 1);
        let _third = connections.acquire(1, 2).unwrap();
        assert_eq!(connections.held(1), 2);
    }

    #[test]
    fn the_workspace_limit_spares_admins_and_zero_means_none() {
        assert!(check_workspaces(9, 0, 10, false).is_ok());
        let refused = check_workspaces(10, 0, 10, false).unwrap_err();
        assert_eq!(refused.code, "workspace_quota");
        assert!(refused.message.contains("workspaces.max_per_user = 10"));
        let refused = check_workspaces(8, 2, 10, false).unwrap_err();
        assert!(
            refused.message.contains("kept files of 2"),
            "{}",
            refused.message
        );
        assert!(check_workspaces(10, 5, 10, true).is_ok());
        assert!(check_workspaces(1000, 0, 0, false).is_ok());
    }
}
