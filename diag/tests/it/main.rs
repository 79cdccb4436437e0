//! Integration tests of the `diag` library: the sizes and moves reports on fixture programs.

mod moves;
mod sizes;
mod support;
