//! A TCP proxy in front of a node, on its own thread and runtime, that can make the node slow
//! (every chunk of its answers held back), a black hole (connections accepted, nothing answered)
//! or unreachable (connections closed at once), switched while traffic flows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes moved per read; answers are delayed per chunk.
const PROXY_CHUNK_BYTES: usize = 64 * 1024;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward both ways; answers wait `delay` first.
    Forward = 0,
    /// Accept and read, forward nothing, answer nothing.
    BlackHole = 1,
    /// Close every connection, new or open.
    Refuse = 2,
}

struct Control {
    mode: AtomicU8,
    delay_ms: AtomicU64,
}

impl Control {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            0 => Mode::Forward,
            1 => Mode::BlackHole,
            _ => Mode::Refuse,
        }
    }
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    control: Arc<Control>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let control = Arc::new(Control {
            mode: AtomicU8::new(Mode::Forward as u8),
            delay_ms: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_control = Arc::clone(&control);
        std::thread::Builder::new()
            .name(format!("proxy-{addr}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, target, thread_control) => {}
                    }
                });
            })
            .expect("spawn proxy thread");
        Proxy {
            addr,
            control,
            stop: Some(stop),
        }
    }

    /// Switches what the proxy does with traffic (open connections included).
    pub fn set_mode(&self, mode: Mode) {
        self.control.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Holds back every chunk of the node's answers by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.control
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, control: Arc<Control>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            match control.mode() {
                Mode::Refuse => drop(client),
                Mode::BlackHole => swallow(client, &control).await,
                Mode::Forward => match TcpStream::connect(target).await {
                    Ok(node) => forward(client, node, control).await,
                    Err(_) => drop(client),
                },
            }
        });
    }
}

/// Reads and drops whatever arrives until the peer closes or the mode turns to refuse.
async fn swallow(mut client: TcpStream, control: &Control) {
    let mut buf = vec![0u8; PROXY_CHUNK_BYTES];
    while control.mode() != Mode::Refuse {
        match tokio::time::timeout(Duration::from_millis(100), client.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
}

async fn forward(client: TcpStream, node: TcpStream, control: Arc<Control>) {
    let (client_read, client_write) = client.into_split();
    let (node_read, node_write) = node.into_split();
    let requests = pump(client_read, node_write, Arc::clone(&control), false);
    let answers = pump(node_read, client_write, control, true);
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
    delayed: bool,
) {
    let mut buf = vec![0u8; PROXY_CHUNK_BYTES];
    loop {
        let n = match tokio::time::timeout(Duration::from_millis(100), from.read(&mut buf)).await {
            Err(_) => {
                if control.mode() == Mode::Refuse {
                    return;
                }
                continue;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if delayed {
            let delay = control.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        match control.mode() {
            Mode::Refuse => return,
            Mode::BlackHole => continue,
            Mode::Forward => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
