//! Parsing the trace file written by the `diag-memtrace` preload library.

use serde::{Deserialize, Serialize};

use super::MovesError;

/// The trace format version this parser reads.
pub const TRACE_FORMAT_VERSION: u64 = 1;

/// A trace as written by the preload library.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Why it was written: `exit` or `signal`.
    pub reason: String,
    /// The traced process.
    pub pid: u64,
    /// Path of its executable.
    pub exe: String,
    /// Load bias of the executable (subtract from an address to get the file's address).
    pub exe_base: u64,
    /// First and last mapped addresses of the executable.
    pub exe_range: (u64, u64),
    /// Copies of at least this many bytes have their call site recorded.
    pub threshold_bytes: u64,
    /// Large copies not recorded at all because the per-site table was full.
    pub dropped: u64,
    /// Large copies in their site's total but without an exact-size entry.
    #[serde(default)]
    pub dropped_exact: u64,
    /// `(bucket, count)`: bucket 0 counts zero-byte copies, bucket k sizes in `[2^(k-1), 2^k)`.
    pub histogram: Vec<(u32, u64)>,
    /// Large copies by call site and size.
    pub sites: Vec<RawSite>,
    /// Large copies by call site, all sizes together.
    #[serde(default)]
    pub totals: Vec<SiteTotal>,
}

/// All the large copies of one call site, whatever their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTotal {
    /// The return address of the `memcpy`/`memmove` call.
    pub address: u64,
    /// How many copies.
    pub count: u64,
    /// Total bytes.
    pub bytes: u64,
    /// Smallest copy.
    pub size_min: u64,
    /// Largest copy.
    pub size_max: u64,
}

/// One (call site, size) pair of large copies, with runtime addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSite {
    /// The return address of the `memcpy`/`memmove` call.
    pub address: u64,
    /// Bytes per copy.
    pub size: u64,
    /// How many copies.
    pub count: u64,
    /// Total bytes.
    pub bytes: u64,
}

impl Trace {
    /// Parses the text of a trace file.
    pub fn parse(text: &str) -> Result<Self, MovesError> {
        let mut trace = Trace::default();
        let mut version = None;
        for (i, line) in text.lines().enumerate() {
            let bad = |what: &str| MovesError::Trace {
                line: i + 1,
                message: what.to_string(),
            };
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else { continue };
            let mut next_num = |hex: bool| -> Result<u64, MovesError> {
                let w = words.next().ok_or_else(|| bad("missing field"))?;
                let parsed = if hex {
                    u64::from_str_radix(w.trim_start_matches("0x"), 16)
                } else {
                    w.parse()
                };
                parsed.map_err(|_| bad(&format!("bad number {w:?}")))
            };
            match key {
                "diag-moves" => version = Some(next_num(false)?),
                "reason" => trace.reason = line["reason".len()..].trim().to_string(),
                "pid" => trace.pid = next_num(false)?,
                "exe" => trace.exe = line["exe".len()..].trim().to_string(),
                "exe_base" => trace.exe_base = next_num(true)?,
                "exe_range" => trace.exe_range = (next_num(true)?, next_num(true)?),
                "threshold" => trace.threshold_bytes = next_num(false)?,
                "dropped" => trace.dropped = next_num(false)?,
                "dropped_exact" => trace.dropped_exact = next_num(false)?,
                "hist" => {
                    let bucket = u32::try_from(next_num(false)?).map_err(|_| bad("bad bucket"))?;
                    trace.histogram.push((bucket, next_num(false)?));
                }
                "site" => trace.sites.push(RawSite {
                    address: next_num(true)?,
                    size: next_num(false)?,
                    count: next_num(false)?,
                    bytes: next_num(false)?,
                }),
                "total" => trace.totals.push(SiteTotal {
                    address: next_num(true)?,
                    count: next_num(false)?,
                    bytes: next_num(false)?,
                    size_min: next_num(false)?,
                    size_max: next_num(false)?,
                }),
                _ => {} // Unknown keys are later additions: skip them.
            }
        }
        match version {
            Some(TRACE_FORMAT_VERSION) => Ok(trace),
            Some(v) => Err(MovesError::Trace {
                line: 1,
                message: format!("trace format {v}, this reader knows {TRACE_FORMAT_VERSION}"),
            }),
            None => Err(MovesError::Trace {
                line: 1,
                message: "not a diag-moves trace (no `diag-moves` header)".into(),
            }),
        }
    }

    /// Copies counted, of any size.
    pub fn total_copies(&self) -> u64 {
        self.histogram.iter().map(|&(_, c)| c).sum()
    }

    /// Copies counted with a size of at least `2^(k-1)` for the bucket of `bytes`: a lower
    /// bound on the copies at or above `bytes` when it is a power of two.
    pub fn copies_in_buckets_from(&self, bytes: u64) -> u64 {
        let first = 64 - bytes.leading_zeros();
        self.histogram
            .iter()
            .filter(|&&(k, _)| k >= first)
            .map(|&(_, c)| c)
            .sum()
    }

    /// The address in the executable's file of a runtime address, or `None` when the address
    /// is outside the executable (in a shared library).
    pub fn file_address(&self, runtime: u64) -> Option<u64> {
        exe_file_address(self.exe_base, self.exe_range, runtime)
    }
}

/// The address in the executable's file of `runtime`, an address in the process whose
/// executable was loaded with bias `exe_base` over `exe_range` (the `exe_base` and `exe_range`
/// lines the preloaded libraries write); `None` outside it (a shared library's).
pub fn exe_file_address(exe_base: u64, exe_range: (u64, u64), runtime: u64) -> Option<u64> {
    let (start, end) = exe_range;
    (start <= runtime && runtime < end).then(|| runtime - exe_base)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "diag-moves 1\nreason exit\npid 42\nexe /bin/x y\nexe_base 0x1000\n\
        exe_range 0x1000 0x9000\nthreshold 1024\ndropped 0\nhist 0 3\nhist 17 20\n\
        site 0x15b4 65544 4 262176\ntotal 0x15b4 5 263176 1000 65544\ndropped_exact 1\n";

    #[test]
    fn parses_every_field() {
        let t = Trace::parse(SAMPLE).expect("the sample is valid");
        assert_eq!(t.reason, "exit");
        assert_eq!(t.pid, 42);
        assert_eq!(t.exe, "/bin/x y");
        assert_eq!(t.exe_base, 0x1000);
        assert_eq!(t.exe_range, (0x1000, 0x9000));
        assert_eq!(t.threshold_bytes, 1024);
        assert_eq!(t.histogram, vec![(0, 3), (17, 20)]);
        assert_eq!(
            t.sites,
            vec![RawSite {
                address: 0x15b4,
                size: 65544,
                count: 4,
                bytes: 262176
            }]
        );
        assert_eq!(
            t.totals,
            vec![SiteTotal {
                address: 0x15b4,
                count: 5,
                bytes: 263176,
                size_min: 1000,
                size_max: 65544
            }]
        );
        assert_eq!(t.dropped_exact, 1);
        assert_eq!(t.total_copies(), 23);
        assert_eq!(t.copies_in_buckets_from(1024), 20);
        assert_eq!(t.file_address(0x15b4), Some(0x5b4));
        assert_eq!(t.file_address(0x9000), None);
    }

    #[test]
    fn rejects_other_files_with_a_line_number() {
        let err = Trace::parse("hello\n").expect_err("no header");
        assert!(err.to_string().contains("not a diag-moves trace"), "{err}");
        let err = Trace::parse("diag-moves 1\nsite 0xzz 1 1 1\n").expect_err("bad hex");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
