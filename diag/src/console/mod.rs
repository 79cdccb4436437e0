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

pub mod waits;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use console_api::instrument::InstrumentRequest;
use console_api::instrument::instrument_client::InstrumentClient;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Where the console server listens unless `TOKIO_CONSOLE_BIND` says otherwise; what
/// `tokio-console` connects to when given no address.
pub const DEFAULT_CONSOLE_ADDR: &str = "127.0.0.1:6669";

/// The environment variable that moves the console server (`HOST:PORT`).
pub const CONSOLE_BIND_ENV: &str = "TOKIO_CONSOLE_BIND";

/// Events the layer buffers between the program's threads and the console's aggregator
/// (console-subscriber's default). The aggregator is one thread; when the program makes events
/// faster than it folds them the buffer fills and further events are dropped, and the console
/// shows a sample without saying so but in its header. Measured on a 2-core machine under
/// `ddsplit local` (16 workers, `--rate`): 100 operations a second lose nothing; 200 lose about
/// 180,000 events a minute with this buffer and nothing with ten times it, at 2.3 GB of peak RSS
/// instead of 0.66 GB (a buffered event holds its span's fields); full speed (~1,300 a second)
/// loses over a million events a minute whatever the buffer. So the buffer stays at the
/// default, and the drops are counted ([`drops`]) instead. `TOKIO_CONSOLE_BUFFER_CAPACITY`
/// overrides it.
pub const EVENT_BUFFER_CAPACITY: usize = 1024 * 100;

/// How often the aggregator publishes to its clients (console-subscriber's default: 1 s).
/// `TOKIO_CONSOLE_PUBLISH_INTERVAL` overrides it.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(500);

/// How long the aggregator keeps a task or resource that has ended (console-subscriber's
/// default: an hour). A loaded DDSplit ends thousands of short tasks and timers a second, and
/// an hour of them is kept in memory and walked at every publish, while the `tokio-console` UI
/// itself shows an ended task for only 6 s (its `--retain-for`). `TOKIO_CONSOLE_RETENTION`
/// overrides it.
pub const RETENTION: Duration = Duration::from_secs(10);

/// The address the console server of this process listens on.
pub fn console_addr() -> String {
    std::env::var(CONSOLE_BIND_ENV).unwrap_or_else(|_| DEFAULT_CONSOLE_ADDR.to_string())
}

/// Checks that the console server's address ([`console_addr`]) is free, before the layer
/// binds it: the layer's server logs a failure to bind and goes on without one, and a console
/// client (the recorder, `tokio-console`) would then watch whatever process holds the address.
pub fn claim_addr() -> Result<(), String> {
    let addr = console_addr();
    match std::net::TcpListener::bind(&addr) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the tokio-console address {addr} is taken ({e}): another process's console server \
             is there; set {CONSOLE_BIND_ENV}=HOST:PORT to another port"
        )),
    }
}

/// The console layer. It starts the console's gRPC server on a thread of its own (with its own
/// small runtime, so the server does not run on the runtime it observes) and records the
/// runtime's task, waker and resource events; its own filter lets them through whatever the
/// program's log filter is. The settings are this module's constants, and the
/// `TOKIO_CONSOLE_*` environment variables override them. It also starts the drop counter
/// ([`drops`]).
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = console_subscriber::ConsoleLayer::builder()
        .event_buffer_capacity(EVENT_BUFFER_CAPACITY)
        .publish_interval(PUBLISH_INTERVAL)
        .retention(RETENTION)
        .with_default_env()
        .spawn::<S>();
    watch_drops(console_addr());
    layer
}

/// Events the console layer dropped because its buffer was full, by kind, since the program
/// started: when all are 0 the console's view is complete.
#[derive(Debug, Default)]
pub struct ConsoleDrops {
    /// Task events (spawns, polls, wakes).
    pub tasks: AtomicU64,
    /// Resource events (a `Mutex`, `Semaphore`, timer... created, its state).
    pub resources: AtomicU64,
    /// Async operation events (a wait on a resource).
    pub async_ops: AtomicU64,
    /// True once the counter receives the console's updates: before, the counts are not known.
    pub watching: AtomicBool,
}

impl ConsoleDrops {
    /// All dropped events.
    pub fn total(&self) -> u64 {
        self.tasks.load(Ordering::Relaxed)
            + self.resources.load(Ordering::Relaxed)
            + self.async_ops.load(Ordering::Relaxed)
    }
}

static DROPS: ConsoleDrops = ConsoleDrops {
    tasks: AtomicU64::new(0),
    resources: AtomicU64::new(0),
    async_ops: AtomicU64::new(0),
    watching: AtomicBool::new(false),
};

/// The process's console drop counts.
pub fn drops() -> &'static ConsoleDrops {
    &DROPS
}

/// How long the drop counter waits before connecting again to a console server that is not up
/// yet or closed the stream.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The layer reports its drops only in the updates it publishes to console clients (and resets
/// them there), so the counter is a console client of the process's own server: a thread with a
/// small runtime of its own, like the server's, adding up every update's `dropped_events`.
fn watch_drops(addr: String) {
    let spawned = std::thread::Builder::new()
        .name("console-drops".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("tokio-console: the drop counter cannot start: {e}");
                    return;
                }
            };
            // The counter's own tasks and sockets must not be traced: the console would report
            // them, and every update the counter reads would make more events to report.
            let untraced = tracing::Dispatch::none();
            tracing::dispatcher::with_default(&untraced, || {
                runtime.block_on(async move {
                    loop {
                        let _ = count_drops(&addr).await;
                        DROPS.watching.store(false, Ordering::Relaxed);
                        tokio::time::sleep(RECONNECT_DELAY).await;
                    }
                })
            });
        });
    if let Err(e) = spawned {
        eprintln!("tokio-console: the drop counter cannot start: {e}");
    }
}

async fn count_drops(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = InstrumentClient::connect(format!("http://{addr}")).await?;
    let mut updates = client
        .watch_updates(InstrumentRequest {})
        .await?
        .into_inner();
    DROPS.watching.store(true, Ordering::Relaxed);
    while let Some(update) = updates.message().await? {
        if let Some(t) = update.task_update {
            DROPS.tasks.fetch_add(t.dropped_events, Ordering::Relaxed);
        }
        if let Some(r) = update.resource_update {
            DROPS
                .resources
                .fetch_add(r.dropped_events, Ordering::Relaxed);
        }
        if let Some(a) = update.async_op_update {
            DROPS
                .async_ops
                .fetch_add(a.dropped_events, Ordering::Relaxed);
        }
    }
    Ok(())
}
