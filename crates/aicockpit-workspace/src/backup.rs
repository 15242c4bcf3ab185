//! (placeholder: backup)
