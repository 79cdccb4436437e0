//! The process's allocation counters (and, in the console build, the console layer's dropped
//! events) as `/metrics` families.

use std::sync::{Arc, OnceLock};

use crate::metrics::{MetricsSource, Registry, Sample};

/// Adds this module's sources to `registry`.
pub(super) fn register(registry: &Registry) {
    registry.add_source(Arc::new(AllocSource));
    #[cfg(feature = "console")]
    registry.add_source(Arc::new(ConsoleDropSource));
}

/// The process's allocation counters on `/metrics`, as `ddsplit_alloc_*` families (none when the
/// global allocator does not count, e.g. in the heap-profile build).
struct AllocSource;

impl MetricsSource for AllocSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        if !diag::alloc::is_counting() {
            return;
        }
        static FAMILIES: OnceLock<Vec<String>> = OnceLock::new();
        let families = FAMILIES.get_or_init(|| {
            diag::alloc::METRICS
                .iter()
                .map(|m| format!("ddsplit_{}", m.name))
                .collect()
        });
        let counts = diag::alloc::process();
        for (metric, family) in diag::alloc::METRICS.iter().zip(families) {
            out.push(Sample {
                family: family.as_str(),
                kind: metric.kind,
                help: metric.help,
                suffix: "",
                labels: String::new(),
                value: (metric.value)(&counts) as f64,
            });
        }
    }
}

/// `ddsplit_console_dropped_events_total{kind}`: events tokio-console's layer dropped (its buffer
/// was full), so whether the console's view is complete; and whether they are being counted.
#[cfg(feature = "console")]
struct ConsoleDropSource;

#[cfg(feature = "console")]
impl MetricsSource for ConsoleDropSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        use std::sync::atomic::Ordering::Relaxed;
        let drops = diag::console::drops();
        for (kind, counter) in [
            ("tasks", &drops.tasks),
            ("resources", &drops.resources),
            ("async_ops", &drops.async_ops),
        ] {
            out.push(Sample {
                family: "ddsplit_console_dropped_events_total",
                kind: "counter",
                help: "Events the tokio-console layer dropped because its buffer was full: the \
                       console shows less than happened while this grows.",
                suffix: "",
                labels: format!("kind=\"{kind}\""),
                value: counter.load(Relaxed) as f64,
            });
        }
        out.push(Sample {
            family: "ddsplit_console_drops_counted",
            kind: "gauge",
            help: "1 while the drop counter receives the console's updates (the counts above are \
                   known), 0 before it has connected.",
            suffix: "",
            labels: String::new(),
            value: f64::from(u8::from(drops.watching.load(Relaxed))),
        });
    }
}
