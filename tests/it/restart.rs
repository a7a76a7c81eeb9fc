//! Restarting the server right after a clean exit.
