//! The `ddsplit` command: run a node, a gateway or a whole local cluster, generate load, and
//! put, get, query and delete records. `main` sets up logging and the runtime and dispatches;
//! `cli` is the command line, `servers` starts servers, `records` talks to a gateway,
//! `load_run` runs the load generator under its probes.

mod allocator;
mod cli;
mod live;
mod load_run;
mod records;
mod servers;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(&cli.command, Command::Local(a) if a.load.is_some() || a.workload.ops.is_some())
        || !matches!(
            cli.command,
            Command::Local(_) | Command::Node(_) | Command::Gateway(_)
        );
    // The console server binds its address when the logging starts, and says nothing when it
    // cannot: a console client would then watch another process (one still holding it).
    #[cfg(feature = "console")]
    if let Err(e) = diag::console::claim_addr() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    init_logging(if quiet { "warn" } else { "info" });
    if let Err(e) = ddsplit::tasks::level_from_env() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    // Dropped last, after the runtime: the heap profile covers the whole run.
    let _heap_profile =
        match ddsplit::probes::heap_profile(cli.command.probe_args().diag_out.as_deref()) {
            Ok(profile) => profile,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ddsplit-worker")
        .thread_stack_size(ddsplit::limits::RUNTIME_THREAD_STACK_BYTES)
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DDSPLIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The filter is the log output's own, so that the console layer (which needs tokio's
    // trace-level task events) sees everything whatever the log level.
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only where a terminal reads them, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let subscriber = tracing_subscriber::registry().with(log);
    #[cfg(feature = "console")]
    let subscriber = {
        eprintln!(
            "tokio-console: attach with `tokio-console http://{}`; event buffer {} events \
             (TOKIO_CONSOLE_BUFFER_CAPACITY), publish every {:?}, retention {:?}. Past what its \
             one aggregator thread folds (about 100 operations a second on 2 cores) it drops \
             events: they are counted in /metrics as ddsplit_console_dropped_events_total and \
             in the live line",
            diag::console::console_addr(),
            diag::console::EVENT_BUFFER_CAPACITY,
            diag::console::PUBLISH_INTERVAL,
            diag::console::RETENTION,
        );
        subscriber
            .with(diag::console::layer())
            .with(diag::console::waits::layer())
    };
    subscriber.init();
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Local(args) => servers::run_local(args).await,
        Command::Node(args) => servers::run_node(args).await,
        Command::Gateway(args) => servers::run_gateway(args).await,
        Command::Put { gateway, file } => records::put(gateway.gateway, file).await,
        Command::Get {
            gateway,
            id,
            output,
        } => records::get(gateway.gateway, id, output).await,
        Command::Query {
            gateway,
            queries,
            output,
        } => records::query(gateway.gateway, queries, output).await,
        Command::Delete { gateway, id } => records::delete(gateway.gateway, id).await,
        Command::Repair { gateway, ids, json } => records::repair(gateway.gateway, ids, json).await,
        Command::BuildInfo => {
            print!("{}", ddsplit::build_info::TEXT);
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { gateway } => records::stats(gateway.gateway).await,
        Command::Load {
            gateway,
            load,
            json,
            probes,
        } => {
            let report = load_run::load_with_probes(gateway.gateway, load, &probes).await?;
            load_run::print_report(&report, json)
        }
    }
}
