//! Security defaults of the real processes: the admin endpoint binds loopback unless told
//! otherwise on purpose, node files are owner-only, and nothing a client sends names a file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ddsplit::codec::{CodecParams, split};
use ddsplit::id::RecordId;
use ddsplit::store::log::LOG_FILE_NAME;
use ddsplit::wire::{FragmentKey, Request, Response, read_frame};

use crate::support::{
    COMMAND_TIMEOUT, Cluster, NodeProc, Proc, connect, ddsplit_bin, free_addr, record, wait_output,
};

/// How long a node may take to log its admin endpoint's address.
const ADMIN_LOGGED_TIMEOUT: Duration = Duration::from_secs(20);

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts `ddsplit node` with `admin_args`, returning the process and its stderr lines.
fn node_with_admin(admin_args: &[&str]) -> (std::process::Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(ddsplit_bin())
        .args(["node", "--listen", &free_addr().to_string(), "--data-dir"])
        .arg(dir.path().join("n"))
        .args(admin_args)
        .env("DDSPLIT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, dir)
}

/// Reads stderr until the admin endpoint's address is logged, for up to [`ADMIN_LOGGED_TIMEOUT`].
fn admin_addr(child: &mut std::process::Child) -> SocketAddr {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (send, lines) = mpsc::channel();
    // Read on a thread of its own, so that the wait can stop; it drains the log to the end.
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { return };
            let _ = send.send(line);
        }
    });
    let deadline = Instant::now() + ADMIN_LOGGED_TIMEOUT;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(rest) = line.split("admin endpoint on http://").nth(1) {
                    return rest.trim_end_matches("/metrics").trim().parse().unwrap();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("the node did not log its admin address within {ADMIN_LOGGED_TIMEOUT:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the node never logged its admin address")
            }
        }
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_admin_endpoint_is_loopback_unless_remote_is_asked_for() {
    // Default: loopback, and it answers.
    let (child, _dir) = node_with_admin(&[]);
    let mut proc = Proc { child };
    let addr = admin_addr(&mut proc.child);
    assert!(addr.ip().is_loopback(), "default admin address {addr}");
    assert!(http_get(addr, "/healthz").starts_with("HTTP/1.1 200"));
    drop(proc);

    // Any other address is refused at start, saying what to do.
    let (child, _dir) = node_with_admin(&["--admin", "0.0.0.0:0"]);
    let out = wait_output(
        child,
        COMMAND_TIMEOUT,
        "a node with a non-loopback admin address",
    );
    assert!(
        !out.status.success(),
        "a non-loopback admin address must be refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not loopback") && stderr.contains("--admin-allow-remote"),
        "{stderr}"
    );

    // With the flag, on purpose, it binds.
    let (child, _dir) = node_with_admin(&["--admin", "0.0.0.0:0", "--admin-allow-remote"]);
    let mut proc = Proc { child };
    let addr = admin_addr(&mut proc.child);
    assert!(addr.ip().is_unspecified(), "{addr}");
}

#[test]
fn profiles_can_be_turned_off_while_metrics_stay() {
    let (child, _dir) = node_with_admin(&[]);
    let mut proc = Proc { child };
    let addr = admin_addr(&mut proc.child);
    // A bad parameter is refused before any profiling starts: the route is there.
    let on = http_get(addr, "/debug/pprof/profile?seconds=0");
    assert!(on.starts_with("HTTP/1.1 400"), "{on}");
    drop(proc);

    let (child, _dir) = node_with_admin(&["--no-profiling"]);
    let mut proc = Proc { child };
    let addr = admin_addr(&mut proc.child);
    for path in ["/debug/pprof/profile?seconds=1", "/debug/pprof/heap"] {
        let off = http_get(addr, path);
        assert!(off.starts_with("HTTP/1.1 404"), "{path}: {off}");
    }
    assert!(http_get(addr, "/metrics").starts_with("HTTP/1.1 200"));
    assert!(http_get(addr, "/debug/tasks").starts_with("HTTP/1.1 200"));
}

#[test]
fn node_files_are_owner_only() {
    // A fresh data directory (and its parents) made by the node.
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProc {
        addr: free_addr(),
        data_dir: dir.path().join("a/b/node"),
        proc: None,
    };
    node.start();
    assert_eq!(mode(&node.data_dir), 0o700, "data directory");
    assert_eq!(mode(&node.log_path()), 0o600, "log file");
    node.kill9();

    // A log that arrives readable by others (restored from a backup) is made owner-only.
    std::fs::set_permissions(node.log_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    node.start();
    assert_eq!(mode(&node.log_path()), 0o600, "log file after restart");
}

/// Sends `request` to `addr` and reads the response.
fn call(addr: SocketAddr, request: &Request) -> Response {
    let mut s = connect(addr);
    s.write_all(&request.encode().to_vec()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (kind, payload) = rt.block_on(read_frame(&mut &bytes[..])).unwrap().unwrap();
    Response::decode(kind, payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_client_sends_names_a_file() {
    let cluster = Cluster::start(6, &[]);
    let node = cluster.nodes[0].addr;
    let gateway = cluster.gateway;
    let data_dir = cluster.nodes[0].data_dir.clone();
    tokio::task::spawn_blocking(move || {
        // Ids whose bytes spell path tricks: "../../etc/passwd", "/", NULs.
        let tricky: Vec<RecordId> = [&b"../../etc/passwd"[..], b"////////////////", &[0u8; 16]]
            .iter()
            .map(|b| RecordId::from_bytes((*b).try_into().unwrap()))
            .collect();
        for &id in &tricky {
            let fragment = split(id, &record(1, 300), CodecParams::default())
                .unwrap()
                .remove(0);
            assert!(matches!(
                call(node, &Request::PutFragment(fragment)),
                Response::Done(_)
            ));
            let key = FragmentKey { id, index: 0 };
            assert!(matches!(
                call(node, &Request::GetFragment(key)),
                Response::Fragment(_)
            ));
            assert!(matches!(
                call(node, &Request::DeleteFragments { id }),
                Response::Done(_)
            ));
            call(gateway, &Request::Get { id });
            call(gateway, &Request::Repair { ids: vec![id] });
        }
        call(
            node,
            &Request::ListFragments {
                after: None,
                limit: u32::MAX,
            },
        );
        call(gateway, &Request::RepairScan { after: None });
    })
    .await
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![LOG_FILE_NAME.to_string()],
        "the node made no file but its log"
    );
}
