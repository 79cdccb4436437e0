//! The recording client: subscribes to a process's own console server and writes every update
//! it publishes to a file, until told to finish.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use console_api::instrument::InstrumentRequest;
use console_api::instrument::instrument_client::InstrumentClient;
use tokio::sync::watch;

use super::{RecordingSummary, RecordingWriter};

/// How long the recorder tries to reach the console server before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Updates written after [`Recorder::finish`] is asked for: the server publishes what happened
/// up to its next publish, so the first update after the end of a run may still miss events
/// that were in the layer's buffer; the second holds them.
pub const UPDATES_AFTER_FINISH: u32 = 2;

/// How long [`Recorder::finish`] waits for each of those updates: a few publish intervals.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be written.
    #[error("cannot write the console recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The console server could not be reached or closed the stream.
    #[error("the console server at {addr} {what}")]
    Server {
        /// Its address.
        addr: String,
        /// What happened.
        what: String,
    },
    /// No update came after the run ended: the recording would lack its last events.
    #[error(
        "the console server sent {got} of the {UPDATES_AFTER_FINISH} updates due in {FINISH_TIMEOUT:?} after the run ended: the recording would miss the run's last events"
    )]
    NoFinalUpdate {
        /// Updates that came.
        got: u32,
    },
    /// The recorder's thread died.
    #[error("the recorder's thread stopped without a result")]
    Lost,
    /// The recorder was dropped without being finished: the recording has no end mark.
    #[error("the recording was abandoned before the run ended; it has no end mark")]
    Abandoned,
    /// The recorder's thread could not start.
    #[error("the recorder's thread cannot start: {0}")]
    Thread(std::io::Error),
}

/// A recording in progress, on a thread of its own with a small runtime (so the recorder does
/// not run on the runtime it observes) and no tracing dispatcher (its own tasks and sockets
/// would be recorded, and every update it reads would make more events).
#[derive(Debug)]
pub struct Recorder {
    finish: watch::Sender<bool>,
    result: std_mpsc::Receiver<Result<RecordingSummary, RecordError>>,
    thread: std::thread::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording the console server at `addr` (`HOST:PORT`) into `path`.
    pub fn start(addr: &str, path: &Path) -> Result<Recorder, RecordError> {
        let writer = RecordingWriter::create(path).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (finish, finishing) = watch::channel(false);
        let (done, result) = std_mpsc::channel();
        let (addr, path) = (addr.to_string(), path.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("console-recorder".into())
            .spawn(move || {
                let untraced = tracing::Dispatch::none();
                let outcome = tracing::dispatcher::with_default(&untraced, || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| RecordError::Server {
                            addr: addr.clone(),
                            what: format!("cannot be watched: no runtime ({e})"),
                        })?;
                    runtime.block_on(record(&addr, &path, writer, finishing))
                });
                let _ = done.send(outcome);
            })
            .map_err(RecordError::Thread)?;
        Ok(Recorder {
            finish,
            result,
            thread,
        })
    }

    /// Ends the recording once [`UPDATES_AFTER_FINISH`] more updates are written, and says what
    /// was written.
    pub fn finish(self) -> Result<RecordingSummary, RecordError> {
        let _ = self.finish.send(true);
        let outcome = self.result.recv().unwrap_or(Err(RecordError::Lost));
        let _ = self.thread.join();
        outcome
    }
}

async fn record(
    addr: &str,
    path: &Path,
    mut writer: RecordingWriter,
    mut finishing: watch::Receiver<bool>,
) -> Result<RecordingSummary, RecordError> {
    let server = |what: String| RecordError::Server {
        addr: addr.to_string(),
        what,
    };
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut client = connect(addr).await?;
    let mut updates = client
        .watch_updates(InstrumentRequest {})
        .await
        .map_err(|e| server(format!("refused to stream updates: {e}")))?
        .into_inner();
    let mut after_finish: Option<u32> = None;
    loop {
        let next = async {
            match after_finish {
                Some(_) => tokio::time::timeout(FINISH_TIMEOUT, updates.message()).await,
                None => Ok(updates.message().await),
            }
        };
        tokio::select! {
            changed = finishing.changed(), if after_finish.is_none() => {
                // The recorder was dropped without `finish`: the run failed, and a file with
                // an end mark would read as a whole recording.
                if changed.is_err() {
                    return Err(RecordError::Abandoned);
                }
                if *finishing.borrow() {
                    after_finish = Some(0);
                }
            }
            message = next => {
                let update = match message {
                    Err(_) => return Err(RecordError::NoFinalUpdate { got: after_finish.unwrap_or(0) }),
                    Ok(Ok(Some(update))) => update,
                    Ok(Ok(None)) => return Err(server("closed the stream".into())),
                    Ok(Err(e)) => return Err(server(format!("broke the stream: {e}"))),
                };
                writer.append(&update).map_err(io)?;
                if let Some(n) = &mut after_finish {
                    *n += 1;
                    if *n >= UPDATES_AFTER_FINISH {
                        return writer.finish().map_err(io);
                    }
                }
            }
        }
    }
}

/// Connects to the console server, trying again until [`CONNECT_TIMEOUT`]: a process starts it
/// with its tracing subscriber, which may be a moment before it listens.
async fn connect(addr: &str) -> Result<InstrumentClient<tonic::transport::Channel>, RecordError> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        match InstrumentClient::connect(format!("http://{addr}")).await {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(RecordError::Server {
                    addr: addr.to_string(),
                    what: format!("cannot be reached in {CONNECT_TIMEOUT:?}: {e}"),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
