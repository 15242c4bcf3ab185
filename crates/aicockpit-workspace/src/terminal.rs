//! (placeholder: terminal)
