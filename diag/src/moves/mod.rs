//! Where large values are copied: the report on a `diag-memtrace` trace.
