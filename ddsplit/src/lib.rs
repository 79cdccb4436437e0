//! DDSplit: splits data records into erasure-coded fragments stored on distinct nodes and
//! reassembles them on query.
//!
//! Start at [`local::LocalCluster`] for a whole cluster in one process, [`node`] for the fragment
//! server, [`gateway`] for the client-facing server and [`client::Client`] to talk to a gateway.

pub mod codec;
pub mod id;
pub mod limits;
pub mod error;
pub mod query;
pub mod wire;
pub mod node;
