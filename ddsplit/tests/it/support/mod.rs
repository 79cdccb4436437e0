//! Test harness: a cluster of real `ddsplit node` processes and a `ddsplit gateway` process on
//! loopback, each on a port chosen free for it, with kill -9, signals and restart, and proxies
//! that make a node slow or unreachable.

pub mod proxy;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one connect of [`wait_listening`] may take before it tries again.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an HTTP answer may take (a Prometheus query on a loaded machine included).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a test's own socket may take to connect, and each of its reads and writes.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Gateway flags for tests that count fragments, or damage logs, right after puts: a put is
/// acknowledged only once all k + m fragments are on disk (the default quorum is k + 1, and
/// the last fragment write may still be under way when the client hears "stored").
pub const EVERY_FRAGMENT: [&str; 2] = ["--write-quorum", "6"];

/// How long one `ddsplit` command run by a test may take: the longest, `ddsplit local` runs of
/// a few hundred operations with profiles on, take seconds.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Awaits `future` for at most `limit`; past it, fails saying what was waited for.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {limit:?}"))
}

/// A connection to `addr` with [`SOCKET_TIMEOUT`] on the connect and on every read and write.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(SOCKET_TIMEOUT))
        .expect("set a read timeout");
    stream
        .set_write_timeout(Some(SOCKET_TIMEOUT))
        .expect("set a write timeout");
    stream
}

/// `command`'s exit status and output, as [`Command::output`] gives them, within `limit`; past
/// it, the process is killed and the test fails naming `what`.
pub fn output_within(command: &mut Command, limit: Duration, what: &str) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    wait_output(child, limit, what)
}

/// Waits up to `limit` for `child` to exit, collecting what it writes to its piped stdout and
/// stderr; past it, kills it and fails with `what` and its stderr.
pub fn wait_output(mut child: Child, limit: Duration, what: &str) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    // Both pipes are read while waiting: a child blocked on a full pipe would never exit.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            // `ddsplit` starts no processes of its own: its pipes close when it is killed.
            let stderr = stderr.join().expect("the stderr reader does not panic");
            panic!(
                "{what}: still running after {limit:?}, killed; its stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

/// The `ddsplit` binary under test.
pub fn ddsplit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ddsplit")
}

/// Ports for the servers the tests start on fixed addresses: below Linux's default ephemeral
/// range (32768-60999), so that no outgoing connection of any process on the machine takes one
/// as its source port between the moment it is picked and the moment the server binds it (or
/// binds it again, when a killed node restarts). Ports from the ephemeral range did collide.
const FIXED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback address with a port that was free a moment ago, outside the ephemeral range.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Each test process starts at its own place in the range, so that concurrent test runs on
    // one machine rarely try the same ports.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(FIXED_PORTS.end - FIXED_PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = FIXED_PORTS.start + offset as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener
                .local_addr()
                .expect("a bound listener has an address");
        }
    }
    panic!("no free loopback port in {FIXED_PORTS:?}");
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, PROBE_CONNECT_TIMEOUT).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("process for {addr} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on {addr} after {START_TIMEOUT:?}");
}

/// A child process killed with SIGKILL when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Kills with SIGKILL (no chance to flush or clean up) and reaps.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the pid of a child this process has not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Peak resident memory of the process so far (`VmHWM` in /proc), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        peak_rss_bytes(&format!("/proc/{}/status", self.child.id()))
    }
}

/// `VmHWM` of a /proc status file, in bytes.
pub fn peak_rss_bytes(status_path: &str) -> u64 {
    let status = std::fs::read_to_string(status_path).expect("read /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One node process and what is needed to restart it.
pub struct NodeProc {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub proc: Option<Proc>,
}

impl NodeProc {
    /// Starts (or restarts) the node on its address and data directory.
    pub fn start(&mut self) {
        let mut child = Command::new(ddsplit_bin())
            .args([
                "node",
                "--no-admin",
                "--listen",
                &self.addr.to_string(),
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .env("DDSPLIT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ddsplit node");
        wait_listening(self.addr, &mut child);
        self.proc = Some(Proc { child });
    }

    /// SIGKILLs the node.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// The node's log file.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(ddsplit::store::log::LOG_FILE_NAME)
    }
}

/// The gateway process and what is needed to restart it.
pub struct GatewayProc {
    pub addr: SocketAddr,
    pub args: Vec<String>,
    /// The address of its admin endpoint, if it has one.
    pub admin: Option<SocketAddr>,
    pub proc: Option<Proc>,
}

impl GatewayProc {
    /// Starts (or restarts) the gateway on its address with its arguments.
    pub fn start(&mut self) {
        let mut command = Command::new(ddsplit_bin());
        command.args(["gateway", "--listen", &self.addr.to_string()]);
        match self.admin {
            Some(admin) => command.args(["--admin", &admin.to_string()]),
            None => command.arg("--no-admin"),
        };
        let mut child = command
            .args(&self.args)
            .env("DDSPLIT_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ddsplit gateway");
        wait_listening(self.addr, &mut child);
        if let Some(admin) = self.admin {
            wait_listening(admin, &mut child);
        }
        self.proc = Some(Proc { child });
    }

    /// SIGKILLs the gateway.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }
}

/// How to start a [`Cluster`].
pub struct ClusterOptions {
    pub nodes: usize,
    /// Extra gateway flags.
    pub gateway_args: Vec<String>,
    /// `--fragment-timeout` of the gateway.
    pub fragment_timeout: &'static str,
    /// Put a [`proxy::Proxy`] between the gateway and every node.
    pub proxies: bool,
    /// Give the gateway an admin endpoint (`/metrics`) on a free port.
    pub gateway_admin: bool,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            nodes: 6,
            gateway_args: Vec::new(),
            fragment_timeout: "2s",
            proxies: false,
            gateway_admin: false,
        }
    }
}

/// Node processes and a gateway process.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub gateway: SocketAddr,
    pub gateway_proc: GatewayProc,
    /// With [`ClusterOptions::proxies`]: the proxy in front of each node.
    pub proxies: Vec<proxy::Proxy>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Reads every record of `stored` back through the gateway and asserts it is the same bytes;
    /// `what` says what the cluster has been through, for the message.
    pub async fn assert_all_read_back(
        &self,
        stored: &[(ddsplit::id::RecordId, bytes::Bytes)],
        what: &str,
    ) {
        let mut client = self.client();
        for (id, data) in stored {
            let back = client
                .get(*id)
                .await
                .unwrap_or_else(|e| panic!("{what}: get {id}: {e}"));
            assert!(
                back == *data,
                "{what}: record {id} read back different ({} vs {} bytes)",
                back.len(),
                data.len()
            );
        }
    }

    /// `n` nodes and a gateway with the default split (k = 4, m = 2) and `extra` gateway flags.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_with(ClusterOptions {
            nodes: n,
            gateway_args: extra.iter().map(|s| s.to_string()).collect(),
            ..ClusterOptions::default()
        })
    }

    /// A cluster as `options` say.
    pub fn start_with(options: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<NodeProc> = (0..options.nodes)
            .map(|i| NodeProc {
                addr: free_addr(),
                data_dir: dir.path().join(format!("node-{i}")),
                proc: None,
            })
            .collect();
        for node in &mut nodes {
            node.start();
        }
        let proxies: Vec<proxy::Proxy> = if options.proxies {
            nodes.iter().map(|n| proxy::Proxy::start(n.addr)).collect()
        } else {
            Vec::new()
        };
        let node_list: Vec<String> = if options.proxies {
            proxies.iter().map(|p| p.addr.to_string()).collect()
        } else {
            nodes.iter().map(|n| n.addr.to_string()).collect()
        };
        let mut args = vec![
            "--nodes".to_string(),
            node_list.join(","),
            "--fragment-timeout".to_string(),
            options.fragment_timeout.to_string(),
        ];
        args.extend(options.gateway_args);
        let mut gateway_proc = GatewayProc {
            addr: free_addr(),
            args,
            admin: options.gateway_admin.then(free_addr),
            proc: None,
        };
        gateway_proc.start();
        Cluster {
            nodes,
            gateway: gateway_proc.addr,
            gateway_proc,
            proxies,
            _dir: dir,
        }
    }

    /// A client of the gateway.
    pub fn client(&self) -> ddsplit::client::Client {
        ddsplit::client::Client::new(self.gateway)
    }

    /// Runs the `ddsplit` command with `args` against this cluster's gateway.
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_cli(self.gateway, args, stdin)
    }
}

/// Runs `ddsplit ARGS --gateway ADDR`, feeding `stdin`, within [`COMMAND_TIMEOUT`].
pub fn run_cli(gateway: SocketAddr, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(ddsplit_bin())
        .args(args)
        .args(["--gateway", &gateway.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ddsplit");
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.unwrap_or_default().to_vec();
    // Written from a thread of its own: a command that stops reading must not block the test.
    // Once the command has exited the write ends, at worst with a broken pipe.
    let writer = std::thread::spawn(move || input.write_all(&data));
    let output = wait_output(
        child,
        COMMAND_TIMEOUT,
        &format!("ddsplit {}", args.join(" ")),
    );
    writer
        .join()
        .expect("the stdin writer does not panic")
        .expect("write stdin");
    output
}

/// Deterministic bytes for record `seed`.
pub fn record(seed: u64, len: usize) -> bytes::Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Bytes of a file.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// `GET path` over HTTP/1.0 (so the body is never chunked); the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = connect(addr);
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response has a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    (status, body.to_string())
}

/// A cluster whose every task runs on one current-thread runtime (so a thread-local allocation
/// scope sees a request's async work), without fsync, whose puts wait for all k + m fragments
/// (a put's last fragment write ends inside its own scope, not the next's). Runs `body` with it
/// and a client of its gateway, then shuts it down.
pub fn on_one_thread_cluster<T>(
    body: impl AsyncFnOnce(&ddsplit::local::LocalCluster, &mut ddsplit::client::Client) -> T,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = ddsplit::local::LocalClusterConfig {
            fsync: ddsplit::store::log::FsyncPolicy::Never,
            write_quorum: Some(6),
            ..ddsplit::local::LocalClusterConfig::default()
        };
        let cluster = ddsplit::local::LocalCluster::start(config).await.unwrap();
        let mut client = ddsplit::client::Client::new(cluster.gateway_addr());
        let out = body(&cluster, &mut client).await;
        cluster.shutdown().await.unwrap();
        out
    })
}
