//! tokio-console support: the `console-subscriber` layer, to add beside a program's own
//! `tracing` layers, serving the console's gRPC protocol on `TOKIO_CONSOLE_BIND` (default
//! [`DEFAULT_CONSOLE_ADDR`]). Attach with `tokio-console http://ADDR`.
//!
//! tokio reports its tasks to the console only when built with `--cfg tokio_unstable`, so this
//! module refuses to compile without it. Build such programs in their own target directory
//! (`--target-dir target/console`) so the flag does not rebuild the ordinary one.

#[cfg(not(tokio_unstable))]
compile_error!(
    "the `console` feature needs tokio's unstable instrumentation: build with \
     RUSTFLAGS=\"--cfg tokio_unstable\" and its own target directory, e.g. \
     RUSTFLAGS=\"--cfg tokio_unstable\" cargo build --features console --target-dir target/console \
     (or run `cargo xtask console`)"
);

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Where the console server listens unless `TOKIO_CONSOLE_BIND` says otherwise; what
/// `tokio-console` connects to when given no address.
pub const DEFAULT_CONSOLE_ADDR: &str = "127.0.0.1:6669";

/// The environment variable that moves the console server (`HOST:PORT`).
pub const CONSOLE_BIND_ENV: &str = "TOKIO_CONSOLE_BIND";

/// The address the console server of this process listens on.
pub fn console_addr() -> String {
    std::env::var(CONSOLE_BIND_ENV).unwrap_or_else(|_| DEFAULT_CONSOLE_ADDR.to_string())
}

/// The console layer. It starts the console's gRPC server on a thread of its own (with its own
/// small runtime, so the server does not run on the runtime it observes) and records the
/// runtime's task, waker and resource events; its own filter lets them through whatever the
/// program's log filter is. Settings come from the `TOKIO_CONSOLE_*` environment variables.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    console_subscriber::ConsoleLayer::builder()
        .with_default_env()
        .spawn::<S>()
}
