//! The task metrics through a real Prometheus server: it scrapes a running `ddsplit local`
//! every second while load runs, and its HTTP API must give back the gateway's put task figures,
//! equal to the requests the gateway counted and to what `/debug/tasks` says.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    COMMAND_TIMEOUT, Proc, ddsplit_bin, free_addr, http_get, output_within, wait_listening,
};

/// Debian's `prometheus` package puts the server here.
const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// How long Prometheus may take to show the settled figures: a few scrape intervals, plenty of
/// slack for a loaded CI machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn prometheus_reads_task_metrics_from_the_admin_endpoint() {
    assert!(
        Path::new(PROMETHEUS_BIN).exists(),
        "{PROMETHEUS_BIN} is missing: this test needs a real Prometheus server. Install it with \
         `apt-get install -y --no-install-recommends prometheus` (Debian's package; .ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();

    let (gateway, admin) = (free_addr(), free_addr());
    let mut cluster = Command::new(ddsplit_bin())
        .args(["local", "--listen", &gateway.to_string()])
        .args(["--admin", &admin.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("cluster"))
        .env("DDSPLIT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ddsplit local");
    wait_listening(gateway, &mut cluster);
    wait_listening(admin, &mut cluster);
    let _cluster = Proc { child: cluster };

    let prometheus_addr = free_addr();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, scrape_config(admin)).unwrap();
    let mut prometheus = Command::new(PROMETHEUS_BIN)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prometheus_addr}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn prometheus");
    wait_listening(prometheus_addr, &mut prometheus);
    let _prometheus = Proc { child: prometheus };

    let load = output_within(
        Command::new(ddsplit_bin())
            .args(["load", "--gateway", &gateway.to_string()])
            .args(["--ops", "300", "--concurrency", "4", "--json"])
            .args(["--size-min", "1KiB", "--size-max", "64KiB"]),
        COMMAND_TIMEOUT,
        "ddsplit load",
    );
    assert!(
        load.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );

    // Once the load is over the figures stop moving; Prometheus shows them a scrape or two
    // after the sampler's next sample.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let (instrumented, polls, puts) = loop {
        let instrumented = query(
            prometheus_addr,
            r#"tokio_task_instrumented_total{task="gateway.put"}"#,
        );
        let polls = query(
            prometheus_addr,
            r#"tokio_task_polls_total{task="gateway.put"}"#,
        );
        let puts = query(
            prometheus_addr,
            r#"ddsplit_requests_total{role="gateway",op="put"}"#,
        );
        match (instrumented, polls, puts) {
            (Some(i), Some(p), Some(r)) if i > 0.0 && i == r => break (i, p, r),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not show the settled put figures within {SETTLE_TIMEOUT:?}: \
             instrumented {instrumented:?}, polls {polls:?}, requests {puts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        polls >= instrumented,
        "each put handler was polled at least once: {polls} polls, {instrumented} handlers"
    );
    assert_eq!(instrumented, puts);
    let workers = query(prometheus_addr, "tokio_runtime_workers").expect("runtime metrics");
    assert!(workers >= 1.0, "{workers}");

    // `/debug/tasks` gives the same figures as JSON.
    let (status, body) = http_get(admin, "/debug/tasks");
    assert_eq!(status, 200, "{body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        snapshot["tasks"]["gateway.put"]["instrumented_count"].as_f64(),
        Some(instrumented),
        "{body}"
    );
    assert!(
        snapshot["runtime"]["workers_count"].as_u64() >= Some(1),
        "{body}"
    );
}

fn scrape_config(target: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: ddsplit\n    scrape_interval: 1s\n    \
         static_configs:\n      - targets: ['{target}']\n"
    )
}

/// The value of an instant query that selects one series, or `None` while it selects none.
fn query(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    let (status, body) = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success", "{body}");
    let result = json["data"]["result"].as_array().unwrap();
    assert!(result.len() <= 1, "{promql} selects several series: {body}");
    let value = result.first()?["value"][1].as_str().unwrap();
    Some(value.parse().unwrap())
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
