//! Console recordings: a process's tokio-console stream kept in a file, read back, and served
//! again to `tokio-console`.
//!
//! The console protocol is a stream of `Update`s: the first holds the whole state of the
//! process's tasks, resources and async operations, each later one what changed since. A
//! recording is the updates one client received, in order, so replaying them to another client
//! gives it the same view ([`replay`]), and folding them gives the figures of a run
//! (`snapshot::ConsoleFigures`). [`Recorder`] is the client that writes one.
//!
//! The file: a header line (`diag-console-recording 1`), then each update as a tag byte `U`
//! and the protobuf message, length-delimited; then the end mark, a tag byte `E` and the count
//! of updates as a varint. A file without its end mark was cut short (a process killed, a disk
//! full) and is refused, never read as a shorter run.

mod recorder;
pub mod replay;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use console_api::instrument::Update;
use prost::Message;

pub use recorder::{RecordError, Recorder};

/// The file a recording is written to in a probe directory (`ddsplit --console-record`).
pub const RECORDING_FILE: &str = "console.rec";

/// The first line of every recording.
pub const RECORDING_MAGIC: &str = "diag-console-recording";

/// The format version this code writes and reads.
pub const RECORDING_VERSION: u32 = 1;

/// Largest update read from a file: a process's whole state in the first update of a busy
/// recording is a few megabytes; a length past this is a damaged file, not an update.
pub const UPDATE_BYTES_MAX: u64 = 256 * 1024 * 1024;

const UPDATE_TAG: u8 = b'U';
const END_TAG: u8 = b'E';

/// A recording read back: the updates, in the order they were received.
#[derive(Debug, Clone, Default)]
pub struct ConsoleRecording {
    /// The updates.
    pub updates: Vec<Update>,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Updates written.
    pub updates: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Events the console layer dropped while recording (its buffer was full): the recording
    /// misses them.
    pub dropped_events: u64,
}

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file does not start like a recording.
    #[error("{path} is not a console recording (it does not start with `{RECORDING_MAGIC}`)")]
    NotARecording {
        /// The file.
        path: PathBuf,
    },
    /// Another version of the format.
    #[error(
        "{path} is a console recording of format {found}; this tool reads format {RECORDING_VERSION}: record again"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it says.
        found: String,
    },
    /// The file ends before its end mark.
    #[error(
        "{path} is cut short at byte {offset}, after {updates} updates ({why}): the recording \
         process was killed or the file truncated; record again"
    )]
    CutShort {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        offset: usize,
        /// Updates read whole before it.
        updates: usize,
        /// What was missing.
        why: &'static str,
    },
    /// A part of the file is not what the format says.
    #[error("{path} is damaged at byte {offset}: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: usize,
        /// What is wrong.
        why: String,
    },
}

/// Writes a recording, an update at a time.
#[derive(Debug)]
pub struct RecordingWriter {
    out: BufWriter<std::fs::File>,
    summary: RecordingSummary,
}

impl RecordingWriter {
    /// Creates the file (replacing one there) and writes the header.
    pub fn create(path: &Path) -> std::io::Result<RecordingWriter> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        let header = format!("{RECORDING_MAGIC} {RECORDING_VERSION}\n");
        out.write_all(header.as_bytes())?;
        Ok(RecordingWriter {
            out,
            summary: RecordingSummary {
                bytes: header.len() as u64,
                ..RecordingSummary::default()
            },
        })
    }

    /// Appends one update.
    pub fn append(&mut self, update: &Update) -> std::io::Result<()> {
        let body = update.encode_length_delimited_to_vec();
        self.out.write_all(&[UPDATE_TAG])?;
        self.out.write_all(&body)?;
        self.summary.updates += 1;
        self.summary.bytes += 1 + body.len() as u64;
        self.summary.dropped_events += dropped_events(update);
        Ok(())
    }

    /// Writes the end mark and syncs the file: only then is it a whole recording.
    pub fn finish(mut self) -> std::io::Result<RecordingSummary> {
        let mut end = vec![END_TAG];
        prost::encoding::encode_varint(self.summary.updates, &mut end);
        self.out.write_all(&end)?;
        self.summary.bytes += end.len() as u64;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.summary)
    }
}

/// Events the console layer reports dropped in `update`.
pub fn dropped_events(update: &Update) -> u64 {
    update.task_update.as_ref().map_or(0, |t| t.dropped_events)
        + update
            .resource_update
            .as_ref()
            .map_or(0, |r| r.dropped_events)
        + update
            .async_op_update
            .as_ref()
            .map_or(0, |a| a.dropped_events)
}

impl ConsoleRecording {
    /// Reads the recording at `path`.
    pub fn read(path: &Path) -> Result<ConsoleRecording, RecordingError> {
        let bytes = std::fs::read(path).map_err(|source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a recording (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ConsoleRecording, RecordingError> {
        let path = || path.to_path_buf();
        let header_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .filter(|&n| n < 64)
            .ok_or_else(|| RecordingError::NotARecording { path: path() })?;
        let header = String::from_utf8_lossy(&bytes[..header_end]);
        let Some(version) = header.strip_prefix(RECORDING_MAGIC).map(str::trim) else {
            return Err(RecordingError::NotARecording { path: path() });
        };
        if version != RECORDING_VERSION.to_string() {
            return Err(RecordingError::Version {
                path: path(),
                found: version.to_string(),
            });
        }
        let mut updates = Vec::new();
        let mut at = header_end + 1;
        loop {
            let cut = |why| RecordingError::CutShort {
                path: path(),
                offset: at,
                updates: updates.len(),
                why,
            };
            let Some(&tag) = bytes.get(at) else {
                return Err(cut("no end mark"));
            };
            let mut rest = &bytes[at + 1..];
            let before = rest.len();
            let length =
                prost::encoding::decode_varint(&mut rest).map_err(|_| cut("a length cut off"))?;
            let body_at = at + 1 + (before - rest.len());
            match tag {
                END_TAG => {
                    if length != updates.len() as u64 {
                        return Err(RecordingError::Damaged {
                            path: path(),
                            offset: at,
                            why: format!(
                                "the end mark counts {length} updates, the file holds {}",
                                updates.len()
                            ),
                        });
                    }
                    let end = body_at;
                    if end != bytes.len() {
                        return Err(RecordingError::Damaged {
                            path: path(),
                            offset: end,
                            why: format!("{} bytes after the end mark", bytes.len() - end),
                        });
                    }
                    return Ok(ConsoleRecording { updates });
                }
                UPDATE_TAG => {}
                other => {
                    return Err(RecordingError::Damaged {
                        path: path(),
                        offset: at,
                        why: format!("a record tagged {other:#04x}, neither an update nor the end"),
                    });
                }
            }
            if length > UPDATE_BYTES_MAX {
                return Err(RecordingError::Damaged {
                    path: path(),
                    offset: at,
                    why: format!("an update of {length} bytes, over the {UPDATE_BYTES_MAX} limit"),
                });
            }
            let end = body_at + length as usize;
            let Some(body) = bytes.get(body_at..end) else {
                return Err(cut("an update cut off"));
            };
            let update = Update::decode(body).map_err(|e| RecordingError::Damaged {
                path: path(),
                offset: at,
                why: format!("update {} does not decode: {e}", updates.len() + 1),
            })?;
            updates.push(update);
            at = end;
        }
    }

    /// Events the console layer reports dropped over the whole recording.
    pub fn dropped_events(&self) -> u64 {
        self.updates.iter().map(dropped_events).sum()
    }
}

#[cfg(test)]
mod tests;
