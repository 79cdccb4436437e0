//! Heap figures from a dhat profile (`dhat-heap.json`, the format valgrind's DHAT viewer
//! opens): allocations by the program's own function that made them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cpu::parse_frame;

/// Most allocation sites kept per snapshot, by blocks.
pub const HEAP_SITES_MAX: usize = 80;

/// Frames kept per site to show how it was reached.
const SITE_FRAMES_MAX: usize = 4;

/// Allocations of one site: the innermost frame of the program's own code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapSite {
    /// The function that allocated (std frames such as `Box::new` skipped).
    pub function: String,
    /// Its file and line.
    pub location: Option<String>,
    /// The frames just inside it (e.g. `alloc::boxed::Box<T>::pin`), innermost first.
    pub via: Vec<String>,
    /// Blocks allocated.
    pub blocks: u64,
    /// Bytes allocated.
    pub bytes: u64,
}

impl HeapSite {
    /// Average block size: the size of what is allocated when a site allocates one type.
    pub fn bytes_per_block(&self) -> u64 {
        self.bytes.checked_div(self.blocks).unwrap_or(0)
    }
}

/// A heap profile, summarized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeapFigures {
    /// Operations of the profiled run.
    pub ops: u64,
    /// Blocks allocated in total.
    pub blocks: u64,
    /// Bytes allocated in total.
    pub bytes: u64,
    /// The sites with the most blocks (at most [`HEAP_SITES_MAX`]), most first.
    pub sites: Vec<HeapSite>,
    /// The profile itself, relative to the snapshot directory.
    pub file: String,
}

/// What could not be read from a dhat file.
#[derive(Debug, thiserror::Error)]
#[error("not a dhat heap profile: {0}")]
pub struct DhatError(String);

#[derive(Deserialize)]
struct DhatFile {
    #[serde(rename = "dhatFileVersion")]
    version: u32,
    pps: Vec<ProgramPoint>,
    ftbl: Vec<String>,
}

#[derive(Deserialize)]
struct ProgramPoint {
    /// Total bytes.
    tb: u64,
    /// Total blocks.
    tbk: u64,
    /// Frames, innermost first, as indices into `ftbl`.
    fs: Vec<usize>,
}

impl HeapFigures {
    /// Reads a dhat profile of a run of `ops` operations; a site is the innermost frame that is
    /// not the standard library's, the allocator's or the profiler's.
    pub fn from_dhat_json(text: &str, ops: u64) -> Result<HeapFigures, DhatError> {
        HeapFigures::from_dhat_json_in(text, ops, &[])
    }

    /// [`from_dhat_json`](HeapFigures::from_dhat_json), with each site at the innermost frame of
    /// the program's own `crates` (`["myapp"]`): an allocation that `bytes` or `tokio` makes on
    /// the program's behalf is the program function's that called them, with the library's
    /// frames as the way there. With no crates, any frame outside std counts.
    pub fn from_dhat_json_in(
        text: &str,
        ops: u64,
        crates: &[&str],
    ) -> Result<HeapFigures, DhatError> {
        let file: DhatFile = serde_json::from_str(text).map_err(|e| DhatError(format!("{e}")))?;
        if file.version != 2 {
            return Err(DhatError(format!(
                "dhatFileVersion {} (this reader knows version 2)",
                file.version
            )));
        }
        let mut sites: HashMap<(String, Option<String>), HeapSite> = HashMap::new();
        let (mut blocks, mut bytes) = (0, 0);
        for pp in &file.pps {
            blocks += pp.tbk;
            bytes += pp.tb;
            let frames: Vec<(&str, Option<&str>)> = pp
                .fs
                .iter()
                .filter_map(|&i| file.ftbl.get(i))
                .map(|f| parse_frame(strip_address(f)))
                .collect();
            let user = frames
                .iter()
                .position(|(f, _)| is_program_function(f) && in_crates(f, crates))
                .or_else(|| frames.iter().position(|(f, _)| is_program_function(f)));
            let (function, location, via) = match user {
                Some(i) => (
                    frames[i].0.to_string(),
                    frames[i].1.map(drop_column),
                    frames[..i]
                        .iter()
                        .rev()
                        .take(SITE_FRAMES_MAX)
                        .map(|(f, _)| f.to_string())
                        .collect(),
                ),
                None => (
                    frames
                        .last()
                        .map_or_else(|| "?".to_string(), |(f, _)| f.to_string()),
                    None,
                    Vec::new(),
                ),
            };
            let site = sites
                .entry((function.clone(), location.clone()))
                .or_insert_with(|| HeapSite {
                    function,
                    location,
                    via,
                    blocks: 0,
                    bytes: 0,
                });
            site.blocks += pp.tbk;
            site.bytes += pp.tb;
        }
        let mut sites: Vec<HeapSite> = sites.into_values().collect();
        sites.sort_by(|a, b| {
            b.blocks
                .cmp(&a.blocks)
                .then_with(|| b.bytes.cmp(&a.bytes))
                .then_with(|| a.function.cmp(&b.function))
        });
        sites.truncate(HEAP_SITES_MAX);
        Ok(HeapFigures {
            ops,
            blocks,
            bytes,
            sites,
            file: String::new(),
        })
    }
}

/// `0x5609...: function (file:line:col)` without the address.
fn strip_address(frame: &str) -> &str {
    match frame.split_once(": ") {
        Some((address, rest)) if address.starts_with("0x") => rest,
        _ => frame,
    }
}

/// `file:line:col` to `file:line`.
fn drop_column(location: &str) -> String {
    match location.rsplit_once(':') {
        Some((head, col)) if head.contains(':') && col.bytes().all(|b| b.is_ascii_digit()) => {
            head.to_string()
        }
        _ => location.to_string(),
    }
}

/// Whether `function` belongs to one of `crates` (any function, when there are none): its first
/// path segment, inside a trait impl's `<...>` too (`<myapp::Store as Trait>::get`).
fn in_crates(function: &str, crates: &[&str]) -> bool {
    if crates.is_empty() {
        return true;
    }
    let name = function.trim_start_matches(['<', '&', '*']);
    let first = name.split("::").next().unwrap_or_default();
    crates.contains(&first)
}

/// A frame of the program rather than of the allocator, std or the profiler.
fn is_program_function(function: &str) -> bool {
    let f = function.trim_start_matches('<');
    f.contains("::")
        && ![
            "core::",
            "alloc::",
            "std::",
            "dhat::",
            "hashbrown::",
            "diag::alloc",
        ]
        .iter()
        .any(|p| f.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile of the shape dhat 0.3 writes: two program points allocating through
    /// `Box::pin` in one trait method, one through `Vec::with_capacity`.
    const PROFILE: &str = r#"{"dhatFileVersion":2,"mode":"rust-heap","verb":"Allocated",
      "bklt":true,"bkacc":false,"tu":"µs","Mtu":"s","tuth":10,"cmd":"x","pid":1,"tg":1,"te":2,
      "pps":[
        {"tb":5000,"tbk":10,"tl":1,"mb":500,"mbk":1,"gb":500,"gbk":1,"eb":0,"ebk":0,"fs":[1,2,3,4]},
        {"tb":1500,"tbk":3,"tl":1,"mb":500,"mbk":1,"gb":500,"gbk":1,"eb":0,"ebk":0,"fs":[1,2,3,5]},
        {"tb":64,"tbk":2,"tl":1,"mb":32,"mbk":1,"gb":32,"gbk":1,"eb":0,"ebk":0,"fs":[1,6,7]}
      ],
      "ftbl":["[root]",
        "0x1: <alloc::alloc::Global as core::alloc::Allocator>::allocate (alloc/src/alloc.rs:429:14)",
        "0x2: alloc::boxed::Box<T>::new (alloc/src/boxed.rs:250:9)",
        "0x3: alloc::boxed::Box<T>::pin (alloc/src/boxed.rs:300:9)",
        "0x4: <app::Remote as app::Store>::get (app/src/store.rs:40:5)",
        "0x5: <app::Remote as app::Store>::get (app/src/store.rs:40:5)",
        "0x6: alloc::vec::Vec<T>::with_capacity (src/vec/mod.rs:524:9)",
        "0x7: app::codec::split (app/src/codec.rs:9:20)"]}"#;

    #[test]
    fn allocations_are_charged_to_the_program_function_with_the_std_frames_that_led_there() {
        let heap = HeapFigures::from_dhat_json(PROFILE, 5).unwrap();
        assert_eq!((heap.blocks, heap.bytes), (15, 6564));
        assert_eq!(heap.sites.len(), 2);
        let boxed = &heap.sites[0];
        assert_eq!(boxed.function, "<app::Remote as app::Store>::get");
        assert_eq!(boxed.location.as_deref(), Some("app/src/store.rs:40"));
        assert_eq!((boxed.blocks, boxed.bytes_per_block()), (13, 500));
        assert_eq!(boxed.via[0], "alloc::boxed::Box<T>::pin");
        assert_eq!(heap.sites[1].function, "app::codec::split");
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        let err = HeapFigures::from_dhat_json("{}", 1).unwrap_err();
        assert!(err.to_string().contains("not a dhat heap profile"), "{err}");
        let v3 = PROFILE.replace("\"dhatFileVersion\":2", "\"dhatFileVersion\":3");
        let err = HeapFigures::from_dhat_json(&v3, 1).unwrap_err();
        assert!(err.to_string().contains("dhatFileVersion 3"), "{err}");
    }

    #[test]
    fn an_allocation_a_library_makes_for_the_program_is_the_program_functions() {
        let profile = r#"{"dhatFileVersion":2,"mode":"rust-heap","verb":"Allocated",
          "bklt":true,"bkacc":false,"tu":"µs","Mtu":"s","tuth":10,"cmd":"x","pid":1,"tg":1,"te":2,
          "pps":[{"tb":4096,"tbk":4,"tl":1,"mb":1,"mbk":1,"gb":1,"gbk":1,"eb":0,"ebk":0,"fs":[1,2,3,4]}],
          "ftbl":["[root]",
            "0x1: alloc::vec::Vec<T>::with_capacity (src/vec/mod.rs:524:9)",
            "0x2: bytes::bytes_mut::BytesMut::with_capacity (bytes-1.12.2/src/bytes_mut.rs:162:9)",
            "0x3: app::wire::read_frame (app/src/wire.rs:80:5)",
            "0x4: app::server::serve (app/src/server.rs:10:5)"]}"#;
        let any = HeapFigures::from_dhat_json(profile, 1).unwrap();
        assert_eq!(
            any.sites[0].function,
            "bytes::bytes_mut::BytesMut::with_capacity"
        );
        let own = HeapFigures::from_dhat_json_in(profile, 1, &["app"]).unwrap();
        let site = &own.sites[0];
        assert_eq!(site.function, "app::wire::read_frame");
        assert_eq!(site.location.as_deref(), Some("app/src/wire.rs:80"));
        assert_eq!(site.via[0], "bytes::bytes_mut::BytesMut::with_capacity");
    }
}
