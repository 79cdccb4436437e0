//! Who called the library functions that copy. The copy tracer keeps one return address per
//! site: a copy made inside an out-of-line library function (`BytesMut::extend_from_slice`,
//! `ReadBuf::put_slice`) names that function, not the program's code that asked for it. The
//! CPU profile of the same build has whole stacks: the program's function above each library
//! frame, with the samples spent under it, says who calls it and how much.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cpu::{folded_stacks, is_own_code, parse_frame};
use super::{MoveFigures, Snapshot};

/// Callers kept per library function, at most (the most samples first).
pub const LIBRARY_CALLERS_MAX: usize = 8;

/// CPU samples under one library function, charged to one program function that called it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryCaller {
    /// The library function a copy site is in (as the copy tracer names it).
    pub library: String,
    /// The innermost frame of the program's own code above it.
    pub caller: String,
    /// Its file and line.
    pub location: Option<String>,
    /// Samples of the CPU profile under the library function, from this caller.
    pub samples: u64,
}

/// The callers of each of `libraries` in folded stacks (`root;...;leaf COUNT`): for each stack,
/// the innermost frame of a library function and the program's frame nearest above it.
pub fn library_callers(folded: &str, libraries: &HashSet<&str>) -> Vec<LibraryCaller> {
    let mut tally: HashMap<(&str, &str, Option<&str>), u64> = HashMap::new();
    for (stack, count) in folded_stacks(folded) {
        let frames: Vec<(&str, Option<&str>)> = stack.into_iter().map(parse_frame).collect();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, (function, _)) in frames.iter().enumerate().rev() {
            let Some(library) = libraries.get(function) else {
                continue;
            };
            if !seen.insert(library) {
                continue;
            }
            if let Some((caller, location)) =
                frames[..i].iter().rev().find(|(f, l)| is_own_code(f, *l))
            {
                *tally.entry((library, caller, *location)).or_default() += count;
            }
        }
    }
    let mut callers: Vec<LibraryCaller> = tally
        .into_iter()
        .map(|((library, caller, location), samples)| LibraryCaller {
            library: library.to_string(),
            caller: caller.to_string(),
            location: location.map(str::to_string),
            samples,
        })
        .collect();
    callers.sort_by(|a, b| {
        (&a.library, std::cmp::Reverse(a.samples), &a.caller).cmp(&(
            &b.library,
            std::cmp::Reverse(b.samples),
            &b.caller,
        ))
    });
    let mut kept: HashMap<String, usize> = HashMap::new();
    callers.retain(|c| {
        let n = kept.entry(c.library.clone()).or_default();
        *n += 1;
        *n <= LIBRARY_CALLERS_MAX
    });
    callers
}

impl MoveFigures {
    /// The library functions among the copy sites and the program's functions that copy
    /// through them.
    pub fn library_functions(&self) -> HashSet<&str> {
        self.sites
            .iter()
            .map(|s| s.function.as_str())
            .chain(self.functions.iter().map(|f| f.function.as_str()))
            .filter(|f| !is_own_code(f, self.location_of(f)))
            .collect()
    }

    /// The file and line of one of `function`'s copy sites, when a site names it.
    pub fn location_of(&self, function: &str) -> Option<&str> {
        self.sites
            .iter()
            .find(|s| s.function == function && s.location != "?")
            .map(|s| s.location.as_str())
    }
}

impl Snapshot {
    /// Fills the copies' library callers from the CPU profile's folded stacks in `dir` (the
    /// snapshot's directory). Nothing to do without both a copy trace and a CPU profile; a
    /// profile that cannot be read is an error.
    pub fn attach_library_callers(&mut self, dir: &Path) -> std::io::Result<()> {
        let (Some(cpu), Some(moves)) = (&self.cpu, &mut self.moves) else {
            return Ok(());
        };
        let folded = std::fs::read_to_string(dir.join(&cpu.folded_file))?;
        let callers = library_callers(&folded, &moves.library_functions());
        moves.library_callers = callers;
        moves.library_callers_ops = cpu.ops;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_function_is_charged_to_the_program_frame_above_it() {
        let folded = "\
main;app::wire::send (app/src/wire.rs:10);bytes::BytesMut::extend_from_slice (bytes/src/bytes_mut.rs:5);memcpy 7
main;app::gateway::put (app/src/gateway.rs:40);bytes::BytesMut::extend_from_slice (bytes/src/bytes_mut.rs:5) 2
main;app::wire::send (app/src/wire.rs:10);core::ptr::copy (library/core/src/ptr.rs:1) 5
tokio::runtime::park;bytes::BytesMut::extend_from_slice (bytes/src/bytes_mut.rs:5) 4
";
        let libraries: HashSet<&str> = ["bytes::BytesMut::extend_from_slice"].into();
        let callers = library_callers(folded, &libraries);
        let got: Vec<(&str, Option<&str>, u64)> = callers
            .iter()
            .map(|c| (c.caller.as_str(), c.location.as_deref(), c.samples))
            .collect();
        assert_eq!(
            got,
            [
                ("app::wire::send", Some("app/src/wire.rs:10"), 7),
                ("app::gateway::put", Some("app/src/gateway.rs:40"), 2),
            ],
            "stacks with no program frame above are left out"
        );
    }
}
