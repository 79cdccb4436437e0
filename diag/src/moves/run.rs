//! Running a program under the preload library and collecting its trace.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::{MovesError, Trace, check_program};

/// Default bytes from which a copy's call site is recorded (the preload library's default too).
pub const DEFAULT_THRESHOLD_BYTES: u64 = 1024;

/// How to run a program under the copy tracer.
#[derive(Debug, Clone)]
pub struct TraceRun {
    preload: PathBuf,
    program: String,
    args: Vec<String>,
    threshold_bytes: u64,
    out_dir: Option<PathBuf>,
    capture_stdout: bool,
}

/// The result of a traced run.
#[derive(Debug)]
pub struct Traced {
    /// How the program exited.
    pub status: ExitStatus,
    /// The program's path.
    pub program: PathBuf,
    /// The trace file.
    pub trace_path: PathBuf,
    /// The parsed trace.
    pub trace: Trace,
    /// The program's standard output, when captured.
    pub stdout: Vec<u8>,
}

impl TraceRun {
    /// Runs `program` (a path or a name on PATH) with `preload` (the `libdiag_memtrace.so`).
    pub fn new(preload: impl Into<PathBuf>, program: impl Into<String>) -> Self {
        Self {
            preload: preload.into(),
            program: program.into(),
            args: Vec::new(),
            threshold_bytes: DEFAULT_THRESHOLD_BYTES,
            out_dir: None,
            capture_stdout: false,
        }
    }

    /// The program's arguments. Default none.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Copies of at least this many bytes have their call site recorded. Default
    /// [`DEFAULT_THRESHOLD_BYTES`]; lower finds more sites at more cost per copy.
    pub fn threshold_bytes(mut self, bytes: u64) -> Self {
        self.threshold_bytes = bytes.max(1);
        self
    }

    /// Where the trace files go. Default: a directory under the system's temporary directory.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Capture the program's standard output instead of passing it through. Default false.
    pub fn capture_stdout(mut self, capture: bool) -> Self {
        self.capture_stdout = capture;
        self
    }

    /// Runs the program to its end and reads its trace.
    pub fn run(&self) -> Result<Traced, MovesError> {
        let program = check_program(&self.program)?;
        if !self.preload.is_file() {
            return Err(MovesError::Io {
                context: format!("the preload library {} is missing", self.preload.display()),
                error: std::io::ErrorKind::NotFound.into(),
            });
        }
        let out_dir = self.out_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("diag-moves-{}", std::process::id()))
        });
        let io = |context: String| move |error| MovesError::Io { context, error };
        std::fs::create_dir_all(&out_dir)
            .map_err(io(format!("cannot create {}", out_dir.display())))?;
        let preload = std::fs::canonicalize(&self.preload)
            .map_err(io(format!("cannot resolve {}", self.preload.display())))?;
        let mut command = Command::new(&program);
        command
            .args(&self.args)
            .env("LD_PRELOAD", &preload)
            .env("DIAG_MOVES_OUT", out_dir.join("moves.%p.txt"))
            .env("DIAG_MOVES_THRESHOLD", self.threshold_bytes.to_string())
            .stdin(Stdio::null())
            .stdout(if self.capture_stdout {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let child = command
            .spawn()
            .map_err(io(format!("cannot run {}", program.display())))?;
        let pid = child.id();
        let output = child
            .wait_with_output()
            .map_err(io(format!("cannot wait for {}", program.display())))?;
        let trace_path = out_dir.join(format!("moves.{pid}.txt"));
        let text = read_trace(&trace_path)?;
        Ok(Traced {
            status: output.status,
            program,
            trace: Trace::parse(&text)?,
            trace_path,
            stdout: output.stdout,
        })
    }
}

fn read_trace(path: &Path) -> Result<String, MovesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(MovesError::NoTrace(path.to_path_buf()))
        }
        Err(error) => Err(MovesError::Io {
            context: format!("cannot read {}", path.display()),
            error,
        }),
    }
}
