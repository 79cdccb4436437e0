//! The live summary of a load run: a progress bar with throughput, latency and errors on a
//! terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use ddsplit::load::{LoadConfig, LoadProgress};
use indicatif::{ProgressBar, ProgressStyle};

/// How often the summary is refreshed on a terminal.
const REFRESH: Duration = Duration::from_millis(250);
/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Shows `progress` until the returned handle is aborted.
pub fn show(progress: LoadProgress, config: &LoadConfig) -> tokio::task::JoinHandle<()> {
    let by_ops = config.ops;
    let by_time = match (config.duration, config.ops) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let terminal = std::io::stderr().is_terminal();
    diag::tasks::spawn_named("load.summary", async move {
        let bar = match (by_ops, by_time) {
            (Some(ops), _) => ProgressBar::new(ops),
            (None, Some(d)) => ProgressBar::new(d.as_millis() as u64),
            (None, None) => ProgressBar::no_length(),
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .expect("the template is valid"),
        );
        if !terminal {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let (mut last_ops, mut last_at) = (0u64, Duration::ZERO);
        let mut last_plain = Duration::ZERO;
        loop {
            tokio::time::sleep(REFRESH).await;
            let elapsed = progress.elapsed();
            if elapsed.is_zero() {
                bar.set_message("preloading records...");
                continue;
            }
            let ops = progress.ops();
            let window = (elapsed - last_at).as_secs_f64().max(1e-3);
            let rate = (ops - last_ops) as f64 / window;
            (last_ops, last_at) = (ops, elapsed);
            let latency = progress.latency();
            let message = format!(
                "{rate:>8.0} ops/s  p50 {:>6} µs  p99 {:>7} µs  errors {}{}",
                latency.p50,
                latency.p99,
                progress.errors(),
                console_note()
            );
            bar.set_position(if by_ops.is_some() {
                ops
            } else {
                elapsed.as_millis() as u64
            });
            bar.set_message(message.clone());
            if !terminal && elapsed - last_plain >= PLAIN_EVERY {
                eprintln!("[{:>5.1}s] {ops} ops {message}", elapsed.as_secs_f64());
                last_plain = elapsed;
            }
        }
    })
}

/// What the console build adds to the line: the events tokio-console's layer dropped.
#[cfg(feature = "console")]
fn console_note() -> String {
    format!("  console dropped {}", diag::console::drops().total())
}

/// Nothing, without tokio-console.
#[cfg(not(feature = "console"))]
fn console_note() -> &'static str {
    ""
}
