//! The allocation, CPU and heap probes of DDSplit: allocations per put, the allocation metrics,
//! the pprof endpoint, and the files of `ddsplit local --diag-out`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ddsplit::client::Client;
use ddsplit::local::{LocalCluster, LocalClusterConfig};
use ddsplit::store::log::FsyncPolicy;
use diag::alloc::{AllocCounts, AllocScope};
#[cfg(not(feature = "dhat-heap"))]
use diag::cpu::protos::{self, Message as _};

use crate::support::{
    COMMAND_TIMEOUT, ddsplit_bin, on_one_thread_cluster, output_within, record, within,
};

/// How long the load of the pprof test may take to stop once told: the put or get it is in,
/// bounded by the client's timeouts.
const LOAD_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One GET to an admin endpoint: (status, body).
fn http_get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let mut stream = crate::support::connect(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response[head_end + 4..].to_vec())
}

#[cfg(not(feature = "dhat-heap"))]
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .unwrap();
    raw
}

/// Puts measured one by one.
const MEASURED_PUTS: usize = 40;
/// Puts before measuring: connections opened, pools and lazily built tables filled.
const WARMUP_PUTS: usize = 8;

/// Allocations of each of [`MEASURED_PUTS`] puts (client, gateway and nodes' request handling,
/// all on this thread), in a fresh cluster.
fn allocations_per_put() -> Vec<AllocCounts> {
    // The nodes' log writers are threads of their own and are not counted.
    on_one_thread_cluster(async |_, client| {
        let data = record(1, 10_000);
        for _ in 0..WARMUP_PUTS {
            client.put(data.clone()).await.unwrap();
        }
        let mut counts = Vec::with_capacity(MEASURED_PUTS);
        for _ in 0..MEASURED_PUTS {
            let scope = AllocScope::new();
            client.put(data.clone()).await.unwrap();
            counts.push(scope.counts());
        }
        counts
    })
}

#[test]
fn allocations_per_put_are_the_same_from_run_to_run() {
    assert!(
        diag::alloc::is_counting(),
        "the test binary counts allocations"
    );
    let first = allocations_per_put();
    let second = allocations_per_put();
    let allocations =
        |runs: &[AllocCounts]| -> Vec<u64> { runs.iter().map(|c| c.allocations_total).collect() };
    let bytes = |runs: &[AllocCounts]| -> Vec<u64> {
        runs.iter().map(|c| c.bytes_allocated_total).collect()
    };
    // A put allocates: the frames, the fragments, the futures of the fragment writes.
    assert!(first.iter().all(|c| c.allocations_total > 10), "{first:?}");
    assert!(
        first.iter().all(|c| c.bytes_allocated_total > 10_000),
        "the record's fragments at least: {first:?}"
    );
    // Two fresh clusters doing the same puts allocate the same, put for put.
    assert_eq!(allocations(&first), allocations(&second));
    assert_eq!(bytes(&first), bytes(&second));
}

#[test]
fn metrics_show_the_process_allocations_and_those_of_each_operation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (admin, cluster) = runtime.block_on(async {
        let config = LocalClusterConfig {
            fsync: FsyncPolicy::Never,
            admin: Some("127.0.0.1:0".parse().unwrap()),
            ..LocalClusterConfig::default()
        };
        let cluster = LocalCluster::start(config).await.unwrap();
        let mut client = Client::new(cluster.gateway_addr());
        let id = client.put(record(2, 5000)).await.unwrap();
        client.get(id).await.unwrap();
        (cluster.admin_addr().unwrap(), cluster)
    });
    let (status, body) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("ddsplit_alloc_allocations_total ") > 0.0);
    assert!(value("ddsplit_alloc_allocated_bytes_total ") >= value("ddsplit_alloc_live_bytes "));
    assert!(value("ddsplit_alloc_peak_live_bytes ") >= value("ddsplit_alloc_live_bytes "));
    assert!(text.contains("# TYPE ddsplit_alloc_live_bytes gauge\n"));
    assert!(value("ddsplit_request_allocations_total{role=\"gateway\"") > 0.0);
    let put_bytes = text
        .lines()
        .find(|l| {
            l.starts_with("ddsplit_request_allocated_bytes_total{role=\"gateway\"")
                && l.contains("op=\"put\"")
        })
        .unwrap_or_else(|| panic!("no gateway put allocations in\n{text}"));
    let put_bytes: f64 = put_bytes.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        put_bytes >= 5000.0,
        "the put's fragments at least: {put_bytes}"
    );
    runtime.block_on(cluster.shutdown()).unwrap();
}

// The heap-profile build refuses CPU profiles (see the test of that build below).
#[cfg(not(feature = "dhat-heap"))]
#[test]
fn the_pprof_endpoint_serves_gzipped_protobuf_and_flamegraphs_one_at_a_time() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(async {
        let config = LocalClusterConfig {
            fsync: FsyncPolicy::Never,
            admin: Some("127.0.0.1:0".parse().unwrap()),
            ..LocalClusterConfig::default()
        };
        LocalCluster::start(config).await.unwrap()
    });
    let admin = cluster.admin_addr().unwrap();
    // Work to sample while the profiles run.
    let gateway = cluster.gateway_addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = std::sync::Arc::clone(&stop);
        runtime.spawn(async move {
            let mut client = Client::new(gateway);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = client.put(record(3, 50_000)).await.unwrap();
                client.get(id).await.unwrap();
            }
        })
    };

    let first =
        std::thread::spawn(move || http_get(admin, "/debug/pprof/profile?seconds=2&hz=999"));
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http_get(admin, "/debug/pprof/profile?seconds=1");
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("already being taken"));

    let (status, body) = first.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    let profile = protos::Profile::decode(&gunzip(&body)[..]).unwrap();
    let s = |i: i64| profile.string_table[i as usize].as_str();
    assert_eq!(s(profile.sample_type[0].ty), "samples");
    assert_eq!(s(profile.sample_type[1].unit), "nanoseconds");
    assert!(!profile.sample.is_empty());
    assert!(profile.duration_nanos >= 2_000_000_000);
    let ddsplit_functions: Vec<&protos::Function> = profile
        .function
        .iter()
        .filter(|f| s(f.name).contains("ddsplit::") && s(f.filename).ends_with(".rs"))
        .collect();
    assert!(
        !ddsplit_functions.is_empty(),
        "ddsplit's functions, with their files"
    );
    assert!(
        profile.location.iter().any(|l| l.line[0].line > 0),
        "source lines"
    );

    let (status, svg) = http_get(admin, "/debug/pprof/profile?seconds=1&format=svg&hz=999");
    assert_eq!(status, 200);
    let svg = String::from_utf8(svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("<svg"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    let (status, folded) = http_get(
        admin,
        "/debug/pprof/profile?seconds=1&format=folded&view=tasks&hz=999",
    );
    assert_eq!(status, 200);
    let folded = String::from_utf8(folded).unwrap();
    for line in folded.lines() {
        let root = line.split(';').next().unwrap();
        // Task kinds are dotted (`gateway.get`) except the two whole-module ones: the admin
        // endpoint's own work (this very profile being built) and the load generator.
        assert!(
            root.contains('.')
                || ["admin", "load", "executor", "other"].contains(&root)
                || root.contains("::"),
            "a task kind, executor or other: {line}"
        );
    }

    let (status, body) = http_get(admin, "/debug/pprof/profile?seconds=500");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("1 to 120"));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    runtime
        .block_on(within(LOAD_STOP_TIMEOUT, "the load to stop", load))
        .unwrap();
    runtime.block_on(cluster.shutdown()).unwrap();
}

#[cfg(not(feature = "dhat-heap"))]
#[test]
fn the_heap_route_says_how_to_get_a_heap_profile() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(async {
        let config = LocalClusterConfig {
            admin: Some("127.0.0.1:0".parse().unwrap()),
            ..LocalClusterConfig::default()
        };
        LocalCluster::start(config).await.unwrap()
    });
    let (status, body) = http_get(cluster.admin_addr().unwrap(), "/debug/pprof/heap");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("--features dhat-heap"));
    runtime.block_on(cluster.shutdown()).unwrap();
}

fn run_local(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = Command::new(ddsplit_bin());
    command
        .args([
            "local",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--fsync",
            "never",
            "--ops",
            "400",
            "--concurrency",
            "4",
            "--seed",
            "5",
            "--json",
            "--diag-out",
        ])
        .arg(dir)
        .args(extra)
        .env("DDSPLIT_LOG", "error");
    output_within(&mut command, COMMAND_TIMEOUT, "ddsplit local --diag-out")
}

#[cfg(not(feature = "dhat-heap"))]
#[test]
fn local_with_diag_out_writes_allocations_and_cpu_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_local(dir.path(), &["--cpu-profile", "--cpu-profile-hz", "999"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alloc = &report["alloc"];
    assert!(alloc["allocations"].as_u64().unwrap() > 0, "{report}");
    let per_op = alloc["allocations_per_op"].as_f64().unwrap();
    let ops = report["ops"].as_u64().unwrap() as f64;
    assert!((per_op * ops - alloc["allocations"].as_u64().unwrap() as f64).abs() < 1.0);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("alloc.json")).unwrap()).unwrap();
    assert_eq!(&file, alloc);

    let cpu: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cpu.json")).unwrap()).unwrap();
    let n = |k: &str| cpu[k].as_u64().unwrap();
    assert!(n("samples") > 0, "{cpu}");
    assert_eq!(
        n("samples"),
        n("user_samples") + n("executor_samples") + n("other_samples")
    );
    assert_eq!(n("hz"), 999);
    let tasks = cpu["tasks"].as_object().unwrap();
    assert!(
        tasks
            .keys()
            .any(|k| k.starts_with("gateway.") || k.starts_with("node.")),
        "samples of request handlers: {cpu}"
    );

    let folded = std::fs::read_to_string(dir.path().join("cpu.folded")).unwrap();
    assert!(folded.contains("ddsplit::"), "ddsplit's frames");
    assert!(folded.contains(".rs:"), "frames with file and line");
    let tasks_folded = std::fs::read_to_string(dir.path().join("cpu-tasks.folded")).unwrap();
    let samples: u64 = tasks_folded
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(samples, n("samples"), "every sample once in the task view");
    for line in tasks_folded.lines() {
        let mut frames = line.split(';');
        let root = frames.next().unwrap();
        if root != "executor" && root != "other" {
            // A task's stack starts at DDSplit's outermost frame: the runtime's are collapsed.
            let first = frames.next().unwrap();
            assert!(first.contains("ddsplit::"), "{line}");
        }
    }
    let svg = std::fs::read_to_string(dir.path().join("flamegraph.svg")).unwrap();
    assert!(svg.contains("<svg"));
    assert!(!dir.path().join("dhat-heap.json").exists());
}

#[test]
fn a_cpu_profile_needs_somewhere_to_go() {
    // A regression would run the operations and more.
    let out = output_within(
        Command::new(ddsplit_bin()).args(["local", "--ops", "10", "--cpu-profile"]),
        COMMAND_TIMEOUT,
        "ddsplit local --cpu-profile",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--diag-out"));
}

#[cfg(feature = "dhat-heap")]
#[test]
fn the_heap_profile_build_writes_dhat_json_and_refuses_cpu_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_local(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dhat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dhat-heap.json")).unwrap()).unwrap();
    assert_eq!(dhat["dhatFileVersion"], 2);
    assert_eq!(dhat["mode"], "rust-heap");
    assert!(!dhat["pps"].as_array().unwrap().is_empty());
    let frames = dhat["ftbl"].as_array().unwrap();
    assert!(
        frames
            .iter()
            .any(|f| f.as_str().unwrap().contains("ddsplit::")),
        "allocation sites in ddsplit's code"
    );

    let refused = run_local(dir.path(), &["--cpu-profile"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("dhat"));

    // A running process serves the profile so far.
    let admin = crate::support::free_addr();
    let mut child = Command::new(ddsplit_bin())
        .args([
            "local",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            &admin.to_string(),
        ])
        .current_dir(dir.path())
        .env("DDSPLIT_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_listening(admin, &mut child);
    let _running = crate::support::Proc { child };
    let (status, body) = http_get(admin, "/debug/pprof/heap");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served["mode"], "rust-heap");
    let (status, body) = http_get(admin, "/debug/pprof/profile?seconds=1");
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
}

/// The CPU task view names DDSplit's functions by path: a rename (`Gateway::get` to
/// `Gateway::read`) would silently leave its task kind empty, so every rule must name a function
/// the built binary has.
#[test]
fn every_task_view_rule_names_a_function_of_the_binary() {
    let binary = diag::binary::MappedBinary::open(Path::new(ddsplit_bin())).unwrap();
    let functions = binary.function_names().unwrap();
    assert!(
        functions.iter().any(|f| f.starts_with("ddsplit::")),
        "the binary has symbols"
    );
    let view = ddsplit::probes::task_view();
    let unmatched: Vec<String> = view
        .rules()
        .iter()
        .filter(|rule| !functions.iter().any(|f| rule.matches(f)))
        .map(|rule| format!("{} ({})", rule.pattern, rule.kind))
        .collect();
    assert!(
        unmatched.is_empty(),
        "task-view rules that name no function of {}: {unmatched:?}",
        ddsplit_bin()
    );
}
