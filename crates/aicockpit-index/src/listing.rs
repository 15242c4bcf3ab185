//! The list of indexed files, for layers built beside the index (the vector
//! store of `aicockpit-embed`) that follow its contents.

use std::sync::Arc;

use crate::{FileRecord, ProjectIndex};

impl ProjectIndex {
    /// Every indexed file with its record, in path order.
    pub fn files(&self) -> Vec<(String, Arc<FileRecord>)> {
        self.files_read()
            .iter()
            .map(|(path, record)| (path.clone(), record.clone()))
            .collect()
    }
}
