//! The language server over WebSockets, search and chat: filled in once the
//! shared engine lands.

use super::Route;

pub fn routes() -> Vec<Route> {
    Vec::new()
}
