//! The fragment node: a TCP server that stores fragments in its [`log::FragmentLog`].

pub mod log;
