//! Probes for tokio programs.
