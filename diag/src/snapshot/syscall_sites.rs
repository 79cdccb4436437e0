//! Where a program's system calls come from: the stacks `diag-syscount` sampled (one call in
//! 128 per thread and system call), symbolized against the binary, each charged to its innermost
//! frame of the program's own code; a function's share of a call's samples times the call's
//! exact count is its calls. Counts, where the CPU profile's samples in a C wrapper are time:
//! a cheap call (`close`, `lseek`) is named as surely as a slow one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StraceSummaryError, SyscallFigures, is_own_code};
use crate::moves::{MovesError, SourceFrame, exe_file_address, symbolize};

/// Sites kept per snapshot, most calls first.
pub const SYSCALL_SITES_MAX: usize = 64;

/// The calls of one system call that one program function makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyscallSite {
    /// The system call (`openat`, `write (eventfd)`).
    pub call: String,
    /// The innermost function of the program's own code on the sampled stacks.
    pub function: String,
    /// Its file and line where it makes the call (most samples).
    pub location: Option<String>,
    /// Calls over the run: the call's count times the function's share of its samples.
    pub calls: f64,
    /// Sampled stacks behind the estimate.
    pub samples: u64,
}

/// The sampled stacks of a `diag-syscount` report and what symbolizing them needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampledStacks {
    /// The executable's load bias (subtracted from a runtime address for a PIE).
    pub exe_base: u64,
    /// Its mapped addresses: return addresses outside are in shared libraries.
    pub exe_range: (u64, u64),
    /// (system call, sampled calls, return addresses innermost first).
    pub stacks: Vec<(String, u64, Vec<u64>)>,
}

impl SampledStacks {
    /// Reads the `exe_base`, `exe_range` and `stack COUNT 0xIP,... NAME` lines of a report
    /// (see [`SyscallFigures::from_syscount`] for the rest).
    pub fn parse(text: &str) -> Result<SampledStacks, StraceSummaryError> {
        let mut out = SampledStacks::default();
        let bad = |line: &str| StraceSummaryError(format!("a line cut short: {line:?}"));
        for line in text.lines() {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "exe_base" => out.exe_base = hex(rest).ok_or_else(|| bad(line))?,
                "exe_range" => {
                    let (a, b) = rest.split_once(' ').ok_or_else(|| bad(line))?;
                    out.exe_range = (
                        hex(a).ok_or_else(|| bad(line))?,
                        hex(b).ok_or_else(|| bad(line))?,
                    );
                }
                "stack" => out.stacks.push(parse_stack(rest).ok_or_else(|| bad(line))?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The address in the executable's file of a runtime address, if it is the executable's.
    fn file_address(&self, runtime: u64) -> Option<u64> {
        exe_file_address(self.exe_base, self.exe_range, runtime)
    }
}

/// `COUNT 0xIP,0xIP,... NAME` (`-` for no frames; the name may hold a space).
fn parse_stack(rest: &str) -> Option<(String, u64, Vec<u64>)> {
    let (count, rest) = rest.split_once(' ')?;
    let (frames, name) = rest.split_once(' ')?;
    let frames = if frames == "-" {
        Vec::new()
    } else {
        frames.split(',').map(hex).collect::<Option<Vec<u64>>>()?
    };
    let name = name.trim();
    (!name.is_empty()).then_some(())?;
    Some((name.to_string(), count.parse().ok()?, frames))
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

impl SyscallFigures {
    /// Charges the sampled stacks to the program's functions, symbolized against `binary`
    /// (the executable that ran), into [`SyscallFigures::sites`]. `location` rewrites a source
    /// path for the report (e.g. relative to the workspace).
    pub fn attribute_sites(
        &mut self,
        stacks: &SampledStacks,
        binary: &Path,
        location: impl Fn(&str) -> String,
    ) -> Result<(), MovesError> {
        let mut addresses: Vec<u64> = stacks
            .stacks
            .iter()
            .flat_map(|(.., frames)| frames.iter().filter_map(|&a| stacks.file_address(a)))
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let symbolized: HashMap<u64, Vec<SourceFrame>> = addresses
            .iter()
            .copied()
            .zip(symbolize(binary, &addresses)?)
            .collect();
        let (sampled, by_site) = samples_by_site(stacks, &symbolized, &location);
        let mut sites: Vec<SyscallSite> = by_site
            .into_iter()
            .map(|((call, function), site)| SyscallSite {
                calls: self.calls.get(call).copied().unwrap_or(0) as f64 * site.samples as f64
                    / sampled[call].max(1) as f64,
                call: call.to_string(),
                function,
                location: site
                    .locations
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(l, _)| l),
                samples: site.samples,
            })
            .collect();
        sites.sort_by(|a, b| b.calls.total_cmp(&a.calls));
        sites.truncate(SYSCALL_SITES_MAX);
        self.sites = sites;
        Ok(())
    }

    /// Calls of `call` per operation that `function` makes, by the sampled stacks.
    pub fn site_per_op(&self, call: &str, function: &str) -> f64 {
        // A fold from 0.0: an empty sum of floats is -0.0, shown as "-0.00".
        let calls = self
            .sites
            .iter()
            .filter(|s| s.call == call && s.function == function)
            .fold(0.0, |sum, s| sum + s.calls);
        calls / self.ops.max(1) as f64
    }
}

/// The samples one (system call, function) pair took, and at which lines.
#[derive(Default)]
struct SiteSamples {
    samples: u64,
    locations: BTreeMap<String, u64>,
}

/// Samples by (system call, function).
type BySite<'a> = BTreeMap<(&'a str, String), SiteSamples>;

/// Samples per system call, and per (system call, innermost function of the program's own
/// code on the stack).
fn samples_by_site<'a>(
    stacks: &'a SampledStacks,
    symbolized: &HashMap<u64, Vec<SourceFrame>>,
    location: &impl Fn(&str) -> String,
) -> (BTreeMap<&'a str, u64>, BySite<'a>) {
    let mut sampled: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_site: BySite = BTreeMap::new();
    for (call, count, frames) in &stacks.stacks {
        *sampled.entry(call).or_default() += count;
        let own = frames
            .iter()
            .filter_map(|&a| symbolized.get(&stacks.file_address(a)?))
            .flatten()
            .map(|f| (f, f.file.as_deref().map(|file| shortened(file, f.line))))
            .find(|(f, loc)| is_own_code(&f.function, loc.as_deref()));
        if let Some((frame, loc)) = own {
            let site = by_site.entry((call, frame.function.clone())).or_default();
            site.samples += count;
            if let Some(loc) = &loc {
                *site.locations.entry(location(loc)).or_default() += count;
            }
        }
    }
    (sampled, by_site)
}

/// A source path shortened as the CPU profile's frames are (`ddsplit/src/store/log.rs:269`,
/// `tokio-1.54.1/src/...`, `library/std/...`), with its line.
fn shortened(file: &str, line: Option<u32>) -> String {
    let path = crate::cpu::short_path(Path::new(file), Path::new("/"));
    match line {
        Some(l) => format!("{path}:{l}"),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_and_the_executables_addresses_are_read() {
        let text = "diag-syscalls 1\nreason exit\npid 7\nexe /bin/x\nexe_base 0x1000\n\
            exe_range 0x1000 0x9000\ncall 640 0 openat\nsample_every 128\nstacks_dropped 0\n\
            stack 4 0x9f00,0x15b4,0x2000 openat\nstack 1 - write (eventfd)\n";
        let stacks = SampledStacks::parse(text).expect("stacks");
        assert_eq!(stacks.exe_base, 0x1000);
        assert_eq!(stacks.exe_range, (0x1000, 0x9000));
        assert_eq!(
            stacks.stacks,
            [
                ("openat".to_string(), 4, vec![0x9f00, 0x15b4, 0x2000]),
                ("write (eventfd)".to_string(), 1, vec![])
            ]
        );
        assert_eq!(stacks.file_address(0x15b4), Some(0x5b4));
        assert_eq!(stacks.file_address(0x9f00), None, "a shared library's");
        let cut = SampledStacks::parse("stack 4 0x7f00,0x15").expect_err("no name");
        assert!(cut.to_string().contains("cut short"), "{cut}");
        assert!(SampledStacks::parse("stack 4 0x7f00,zz openat").is_err());
    }
}
