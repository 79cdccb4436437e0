//! DDSplit: splits data records into erasure-coded fragments stored on distinct nodes and
//! reassembles them on query.
//!
//! Start at [`local::LocalCluster`] for a whole cluster in one process, [`node`] for the fragment
//! server, [`gateway`] for the client-facing server and [`client::Client`] to talk to a gateway.

pub mod admin;
pub mod build_info;
pub mod bytes_list;
pub mod client;
pub mod codec;
pub mod conn;
pub mod error;
pub mod gateway;
pub mod id;
pub mod inject;
pub mod limits;
pub mod load;
pub mod local;
pub mod metrics;
pub mod node;
pub mod op;
pub mod probes;
pub mod query;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod tasks;
pub mod units;
pub mod wire;
