//! The load generator: a seeded mix of puts, gets and batch queries against a gateway, with
//! latency in HDR histograms, a live summary on a terminal, and a JSON result for tools.
//!
//! Each worker has its own connection, its own random stream (seed + worker number) and its own
//! pool of the records it wrote; gets and queries read those back and check every byte against a
//! checksum, so a wrong answer is counted, not just a failed one. With `--ops` every worker does
//! the same share of operations, so two runs with the same seed do the same work.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::client::Client;
use crate::id::RecordId;
use crate::limits::{QUERY_COUNT_MAX, RECORD_SIZE_MAX};
use crate::query::{ByteRange, DistriQuery};
use crate::units::{ByteSize, parse_duration};

pub use ddsplit_report::{AllocReport, Latency, LoadOp, LoadReport, OpReport, REPORT_VERSION};

/// Records each worker remembers for reading back; past it, a random one is forgotten.
pub const WORKER_POOL_MAX: usize = 4096;
/// Most concurrent workers.
pub const CONCURRENCY_MAX: usize = 4096;
/// Highest `--rate`: a million operations a second is past what any cluster here can serve, so
/// a larger figure is a typo.
pub const LOAD_RATE_MAX: f64 = 1_000_000.0;
/// Distinct error messages kept for the report.
const ERROR_SAMPLES_MAX: usize = 5;
/// Highest latency the histograms track (longer ones are clamped): one minute.
const LATENCY_MAX_US: u64 = 60_000_000;

const LOAD_OPS: [LoadOp; 3] = [LoadOp::Put, LoadOp::Get, LoadOp::Query];

/// Relative weights of the operations, written `put:20,get:70,query:10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 3];
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not OP:WEIGHT"))?;
            let weight: u32 = weight
                .parse()
                .map_err(|_| format!("weight {weight:?} is not a number"))?;
            let slot = match name {
                "put" => 0,
                "get" => 1,
                "query" => 2,
                other => return Err(format!("operation {other:?} is not put, get or query")),
            };
            weights[slot] = weight;
        }
        if weights.iter().sum::<u32>() == 0 {
            return Err("the mix must give some operation a weight".into());
        }
        Ok(Mix { weights })
    }
}

impl Mix {
    fn pick(&self, rng: &mut SmallRng) -> LoadOp {
        let total: u32 = self.weights.iter().sum();
        let mut roll = rng.gen_range(0..total);
        for (op, weight) in LOAD_OPS.iter().zip(self.weights) {
            if roll < weight {
                return *op;
            }
            roll -= weight;
        }
        unreachable!("roll is below the sum of the weights")
    }
}

/// What load to generate.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadConfig {
    /// Seed of the workload: record contents, sizes and the order of operations.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Operation mix as OP:WEIGHT pairs.
    #[arg(long, default_value = "put:20,get:70,query:10")]
    pub mix: Mix,
    /// Smallest record written; sizes are log-uniform between min and max.
    #[arg(long, default_value = "1KiB")]
    pub size_min: ByteSize,
    /// Largest record written.
    #[arg(long, default_value = "64KiB")]
    pub size_max: ByteSize,
    /// Concurrent workers, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Stop after this long (e.g. 10s, 2m). Default 10s unless --ops is given.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many operations (split evenly over the workers).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Queries per batch query.
    #[arg(long, default_value_t = 8)]
    pub query_batch: usize,
    /// Records written per worker before measuring starts, so reads have something to read.
    #[arg(long, default_value_t = 8)]
    pub preload: usize,
    /// Operations per second over all workers, paced (each worker starts an operation every
    /// concurrency/rate seconds, skipping the starts it fell behind on); default: as fast as
    /// the workers go. Latency is timed from each operation's actual start.
    #[arg(long)]
    pub rate: Option<f64>,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            seed: 42,
            mix: "put:20,get:70,query:10"
                .parse()
                .expect("the default mix parses"),
            size_min: ByteSize(1024),
            size_max: ByteSize(64 * 1024),
            concurrency: 16,
            duration: None,
            ops: None,
            query_batch: 8,
            preload: 8,
            rate: None,
        }
    }
}

impl LoadConfig {
    /// Checks the configuration, saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let (min, max) = (self.size_min.0, self.size_max.0);
        if min == 0 || min > max || max > RECORD_SIZE_MAX as u64 {
            return Err(format!(
                "record sizes must satisfy 1 <= min <= max <= {RECORD_SIZE_MAX}; got {min}..{max}"
            ));
        }
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_MAX {
            return Err(format!(
                "concurrency must be 1..={CONCURRENCY_MAX}, got {}",
                self.concurrency
            ));
        }
        if self.query_batch == 0 || self.query_batch > QUERY_COUNT_MAX {
            return Err(format!(
                "query batch must be 1..={QUERY_COUNT_MAX}, got {}",
                self.query_batch
            ));
        }
        if self.ops == Some(0) {
            return Err("--ops must be at least 1".into());
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate <= LOAD_RATE_MAX)
        {
            return Err(format!(
                "--rate must be above 0 and at most {LOAD_RATE_MAX} operations per second, got \
                 {rate}"
            ));
        }
        Ok(())
    }

    /// How often each worker starts an operation under `--rate`.
    fn pacing(&self) -> Option<Duration> {
        self.rate
            .map(|rate| Duration::from_secs_f64(self.concurrency as f64 / rate))
    }

    fn stop_after(&self) -> (Option<Instant>, Option<u64>) {
        let per_worker = self.ops.map(|ops| ops.div_ceil(self.concurrency as u64));
        let duration = match (self.duration, self.ops) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        (duration.map(|d| Instant::now() + d), per_worker)
    }
}

/// The percentiles of `h`.
fn latency_of(h: &Histogram<u64>) -> Latency {
    Latency {
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

/// Counters shared by the workers and the live summary.
struct Recorder {
    histograms: Mutex<[Histogram<u64>; 3]>,
    ops: [AtomicU64; 3],
    errors: [AtomicU64; 3],
    bytes: [AtomicU64; 3],
    wrong_data: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Recorder {
    fn new() -> Recorder {
        let histogram =
            || Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds");
        Recorder {
            histograms: Mutex::new([histogram(), histogram(), histogram()]),
            ops: Default::default(),
            errors: Default::default(),
            bytes: Default::default(),
            wrong_data: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, op: LoadOp, elapsed: Duration, outcome: Result<u64, String>) {
        let i = op as usize;
        let us = (elapsed.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        self.histograms
            .lock()
            .expect("histogram lock is never poisoned")[i]
            .record(us)
            .expect("value is clamped into the histogram's bounds");
        self.ops[i].fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(bytes) => {
                self.bytes[i].fetch_add(bytes, Ordering::Relaxed);
            }
            Err(message) => {
                self.errors[i].fetch_add(1, Ordering::Relaxed);
                let mut samples = self
                    .error_samples
                    .lock()
                    .expect("sample lock is never poisoned");
                if samples.len() < ERROR_SAMPLES_MAX && !samples.contains(&message) {
                    samples.push(message);
                }
            }
        }
    }

    fn total_ops(&self) -> u64 {
        self.ops.iter().map(|o| o.load(Ordering::Relaxed)).sum()
    }

    fn total_errors(&self) -> u64 {
        self.errors.iter().map(|o| o.load(Ordering::Relaxed)).sum()
    }

    fn overall(&self) -> Histogram<u64> {
        let hs = self
            .histograms
            .lock()
            .expect("histogram lock is never poisoned");
        let mut all = hs[0].clone();
        all.add(&hs[1]).expect("histograms share bounds");
        all.add(&hs[2]).expect("histograms share bounds");
        all
    }

    fn report(&self, elapsed: Duration, config: &LoadConfig) -> LoadReport {
        let hs = self
            .histograms
            .lock()
            .expect("histogram lock is never poisoned")
            .clone();
        let mut per_op = BTreeMap::new();
        for op in LOAD_OPS {
            let i = op as usize;
            let ops = self.ops[i].load(Ordering::Relaxed);
            if ops > 0 {
                per_op.insert(
                    op,
                    OpReport {
                        ops,
                        errors: self.errors[i].load(Ordering::Relaxed),
                        bytes: self.bytes[i].load(Ordering::Relaxed),
                        latency_us: latency_of(&hs[i]),
                    },
                );
            }
        }
        let ops = self.total_ops();
        let bytes: u64 = self.bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        LoadReport {
            version: REPORT_VERSION,
            ops,
            errors: self.total_errors(),
            wrong_data: self.wrong_data.load(Ordering::Relaxed),
            elapsed_s: secs,
            ops_per_s: ops as f64 / secs,
            bytes_per_s: bytes as f64 / secs,
            latency_us: latency_of(&self.overall()),
            per_op,
            error_samples: self
                .error_samples
                .lock()
                .expect("sample lock is never poisoned")
                .clone(),
            seed: config.seed,
            concurrency: config.concurrency,
            alloc: None,
        }
    }
}

/// A record a worker wrote: enough to check what comes back.
#[derive(Clone, Copy)]
struct Written {
    id: RecordId,
    len: usize,
    crc: u32,
}

struct Worker {
    client: Client,
    rng: SmallRng,
    pool: Vec<Written>,
    config: LoadConfig,
    recorder: Arc<Recorder>,
}

impl Worker {
    fn record_len(&mut self) -> usize {
        let (min, max) = (self.config.size_min.0 as f64, self.config.size_max.0 as f64);
        let len = (min.ln() + self.rng.r#gen::<f64>() * (max.ln() - min.ln())).exp();
        (len.round() as usize).clamp(
            self.config.size_min.0 as usize,
            self.config.size_max.0 as usize,
        )
    }

    async fn put(&mut self) -> Result<u64, String> {
        let len = self.record_len();
        let mut data = vec![0u8; len];
        self.rng.fill_bytes(&mut data);
        let crc = crc32c::crc32c(&data);
        let id = self
            .client
            .put(Bytes::from(data))
            .await
            .map_err(|e| format!("put: {e}"))?;
        let written = Written { id, len, crc };
        if self.pool.len() < WORKER_POOL_MAX {
            self.pool.push(written);
        } else {
            let slot = self.rng.gen_range(0..self.pool.len());
            self.pool[slot] = written;
        }
        Ok(len as u64)
    }

    fn check(&self, written: &Written, data: &[u8]) -> Result<u64, String> {
        if data.len() != written.len || crc32c::crc32c(data) != written.crc {
            self.recorder.wrong_data.fetch_add(1, Ordering::Relaxed);
            return Err(format!("record {} read back with wrong bytes", written.id));
        }
        Ok(data.len() as u64)
    }

    async fn get(&mut self) -> Result<u64, String> {
        let written = self.pool[self.rng.gen_range(0..self.pool.len())];
        let data = self
            .client
            .get(written.id)
            .await
            .map_err(|e| format!("get: {e}"))?;
        self.check(&written, &data)
    }

    async fn query(&mut self) -> Result<u64, String> {
        let mut picked = Vec::with_capacity(self.config.query_batch);
        let mut queries = Vec::with_capacity(self.config.query_batch);
        for _ in 0..self.config.query_batch {
            let written = self.pool[self.rng.gen_range(0..self.pool.len())];
            let range = if self.rng.gen_bool(0.5) {
                let start = self.rng.gen_range(0..written.len as u64);
                let end = self.rng.gen_range(start..=written.len as u64);
                Some(ByteRange { start, end })
            } else {
                None
            };
            queries.push(DistriQuery::new(written.id, range));
            picked.push(written);
        }
        let answers = self
            .client
            .query(queries.clone())
            .await
            .map_err(|e| format!("query: {e}"))?;
        if answers.len() != queries.len() {
            return Err(format!(
                "query: {} answers to {} queries",
                answers.len(),
                queries.len()
            ));
        }
        let mut bytes = 0;
        for ((answer, query), written) in answers.iter().zip(&queries).zip(&picked) {
            let data = answer
                .as_ref()
                .map_err(|(code, message)| format!("query: {code}: {message}"))?;
            bytes += match query.range {
                None => self.check(written, data)?,
                Some(r) if data.len() as u64 == r.end - r.start => data.len() as u64,
                Some(_) => {
                    self.recorder.wrong_data.fetch_add(1, Ordering::Relaxed);
                    return Err(format!(
                        "query of {} answered with the wrong length",
                        written.id
                    ));
                }
            };
        }
        Ok(bytes)
    }

    async fn one(&mut self, op: LoadOp) {
        let started = Instant::now();
        let outcome = match op {
            LoadOp::Put => self.put().await,
            LoadOp::Get => self.get().await,
            LoadOp::Query => self.query().await,
        };
        self.recorder.record(op, started.elapsed(), outcome);
    }
}

/// A load run under way: its live counters can be read while it runs.
#[derive(Clone)]
pub struct LoadProgress {
    recorder: Arc<Recorder>,
    started: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for LoadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadProgress")
            .field("ops", &self.recorder.total_ops())
            .finish()
    }
}

impl LoadProgress {
    /// Operations finished so far.
    pub fn ops(&self) -> u64 {
        self.recorder.total_ops()
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.recorder.total_errors()
    }

    /// Latency percentiles so far, over all operations.
    pub fn latency(&self) -> Latency {
        latency_of(&self.recorder.overall())
    }

    /// Time since measuring started (zero during preload).
    pub fn elapsed(&self) -> Duration {
        self.started
            .lock()
            .expect("lock is never poisoned")
            .map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// Runs the load against the gateway at `gateway` until its duration or operation count is
/// reached, or `stop` is set. `on_start` receives the live counters once measuring starts.
pub async fn run(
    gateway: SocketAddr,
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    on_start: impl FnOnce(LoadProgress),
) -> anyhow::Result<LoadReport> {
    run_measured(gateway, config, stop, on_start, || {}).await
}

/// [`run`], calling `on_measure` when the measured phase begins (after the preload), so that a
/// probe (a CPU profile) covers exactly what the report measures.
pub async fn run_measured(
    gateway: SocketAddr,
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    on_start: impl FnOnce(LoadProgress),
    on_measure: impl FnOnce(),
) -> anyhow::Result<LoadReport> {
    config.validate().map_err(anyhow::Error::msg)?;
    let recorder = Arc::new(Recorder::new());
    let started = Arc::new(Mutex::new(None));
    on_start(LoadProgress {
        recorder: Arc::clone(&recorder),
        started: Arc::clone(&started),
    });
    // Preload: every worker writes its first records before the clock starts.
    let preloads = (0..config.concurrency).map(|w| {
        let config = config.clone();
        async move {
            let mut worker = Worker {
                client: Client::new(gateway),
                rng: SmallRng::seed_from_u64(
                    config.seed ^ (w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ),
                pool: Vec::new(),
                config,
                recorder: Arc::new(Recorder::new()),
            };
            for _ in 0..worker.config.preload {
                worker
                    .put()
                    .await
                    .map_err(|e| anyhow::anyhow!("preloading records failed: {e}"))?;
            }
            anyhow::Ok(worker)
        }
    });
    let mut workers = futures::future::try_join_all(preloads).await?;
    for worker in &mut workers {
        worker.recorder = Arc::clone(&recorder);
    }
    let (deadline, per_worker) = config.stop_after();
    on_measure();
    diag::alloc::reset_peak();
    let alloc_begin = diag::alloc::process();
    let begin = Instant::now();
    *started.lock().expect("lock is never poisoned") = Some(begin);
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let stop = Arc::clone(&stop);
            let mix = config.mix.clone();
            let mut pace = config.pacing().map(|period| {
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                ticks
            });
            diag::tasks::spawn_named("load.worker", async move {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed)
                    && deadline.is_none_or(|d| Instant::now() < d)
                    && per_worker.is_none_or(|n| done < n)
                {
                    if let Some(ticks) = &mut pace {
                        ticks.tick().await;
                    }
                    let op = match mix.pick(&mut worker.rng) {
                        _ if worker.pool.is_empty() => LoadOp::Put,
                        op => op,
                    };
                    worker.one(op).await;
                    done += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = begin.elapsed();
    let alloc = diag::alloc::process().since(&alloc_begin);
    let mut report = recorder.report(elapsed, &config);
    report.alloc = diag::alloc::is_counting().then(|| alloc_report(&alloc, report.ops));
    Ok(report)
}

/// The allocation report of `counts` over `ops` operations.
fn alloc_report(counts: &diag::alloc::AllocCounts, ops: u64) -> AllocReport {
    AllocReport {
        allocations: counts.allocations_total,
        deallocations: counts.deallocations_total,
        reallocations: counts.reallocations_total,
        bytes_allocated: counts.bytes_allocated_total,
        peak_live_bytes: counts.peak_live_bytes,
        allocations_per_op: counts.allocations_per_op(ops),
        bytes_allocated_per_op: counts.bytes_allocated_per_op(ops),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix: Mix = "put:1,get:3".parse().unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let gets = (0..4000)
            .filter(|_| mix.pick(&mut rng) == LoadOp::Get)
            .count();
        assert!((2800..3200).contains(&gets), "{gets}");
        assert!("put:0".parse::<Mix>().is_err());
        assert!("scan:1".parse::<Mix>().is_err());
        assert!("put".parse::<Mix>().is_err());
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut config = LoadConfig::default();
        assert!(config.validate().is_ok());
        config.size_min = ByteSize(0);
        assert!(config.validate().is_err());
        config = LoadConfig {
            size_max: ByteSize(RECORD_SIZE_MAX as u64 + 1),
            ..LoadConfig::default()
        };
        assert!(config.validate().is_err());
        config = LoadConfig {
            concurrency: 0,
            ..LoadConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
