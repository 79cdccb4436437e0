//! The engine on fixture snapshots: the story's three causes, each alone and together; the same
//! build against itself; a wall-time change alone.

use super::*;
use crate::sizes::{
    EnumImbalance, FieldInfo, FutureInfo, HeldField, SizesReport, StackFrames, TypeInfo, TypeKind,
    VariantInfo,
};
use crate::snapshot::{
    AllocFigures, CpuCategory, CpuFigures, HeapFigures, HeapSite, LibraryCaller, MoveFigures,
    MoveFunction, MoveSite, SizeFigures, Snapshot, WallRun, Workload,
};

const OPS: u64 = 1000;

fn ty(name: &str, size: u64) -> TypeInfo {
    TypeInfo {
        name: name.into(),
        size,
        align: Some(8),
        kind: if name.contains("env#") {
            TypeKind::Future
        } else {
            TypeKind::Struct
        },
        variants: Vec::new(),
        fields: Vec::new(),
    }
}

fn sizes(
    mut types: Vec<TypeInfo>,
    futures: Vec<FutureInfo>,
    imbalanced: Vec<EnumImbalance>,
) -> SizesReport {
    types.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    SizesReport {
        format_version: crate::sizes::FORMAT_VERSION,
        binary: "app".into(),
        types,
        imbalanced_enums: imbalanced,
        futures,
        stack_frames: StackFrames::default(),
    }
}

/// What a build of the fixture program has.
#[derive(Clone, Copy, Default)]
struct Build {
    inline_error: bool,
    boxed_futures: bool,
    big_query: bool,
    /// Extra CPU per operation in one function, nanoseconds.
    spin_ns: u64,
    /// CPU per operation a read spends zeroing its buffer (`calloc`'s `memset`), nanoseconds.
    zeroing_ns: u64,
    /// Throughput factor of the wall runs.
    speed: f64,
    /// Time per operation a function blocks its runtime thread in `fsync`, nanoseconds.
    fsync_ns: u64,
    /// Extra idle time per operation of the `gateway.get` task kind, nanoseconds.
    extra_idle_ns: u64,
    /// Extra time per operation the log's contended lock blocks, nanoseconds.
    extra_contention_ns: u64,
    /// Extra `sendto` calls per operation, made by the connection loop.
    extra_sends: u64,
    /// `futex` calls per operation (they follow the timing, not the code).
    futexes: u64,
    /// Extra polls per operation of the `gateway.get` task kind, each costing the executor
    /// 2 µs of CPU.
    extra_polls: u64,
}

const ERR_BIG: u64 = 49_216;
const FUT_BOXED: u64 = 1_184;
const QUERY_BIG: u64 = 16_480;

fn sizes_of(b: Build) -> SizesReport {
    let err = if b.inline_error { ERR_BIG } else { 48 };
    let mut types = vec![
        ty("app::error::DistriErr", err),
        ty(
            "core::result::Result<app::error::SuccessCode, app::error::DistriErr>",
            err + 8,
        ),
        ty("core::option::Option<app::error::DistriErr>", err),
        ty("app::error::CorruptFragment", 49_200),
        ty("app::gateway::get::{async_fn_env#0}", 400 + err),
    ];
    let mut futures = vec![FutureInfo {
        name: "app::gateway::get::{async_fn_env#0}".into(),
        function: "app::gateway::get".into(),
        size: 400 + err,
        held: vec![HeldField {
            suspend: "Suspend0".into(),
            name: "result".into(),
            type_name: "core::result::Result<app::error::SuccessCode, app::error::DistriErr>"
                .into(),
            size: err + 8,
            is_future: false,
        }],
    }];
    if b.boxed_futures {
        let name = "app::store::{impl#8}::get_fragment::{async_block_env#0}";
        types.push(ty(name, FUT_BOXED));
        futures.push(FutureInfo {
            name: name.into(),
            function: "app::store::{impl#8}::get_fragment".into(),
            size: FUT_BOXED,
            held: Vec::new(),
        });
    } else {
        types.push(ty(
            "app::store::{impl#4}::get_fragment::{async_fn_env#0}",
            1_100,
        ));
    }
    if b.big_query {
        let mut q = ty("app::query::Query<app::query::InlineAnswer>", QUERY_BIG);
        q.fields = vec![FieldInfo {
            name: "answer".into(),
            type_name: "app::query::InlineAnswer".into(),
            size: 16_400,
            offset: 0,
            is_future: false,
        }];
        types.push(q);
    } else {
        types.push(ty("app::query::Query<app::query::SharedAnswer>", 64));
    }
    // Both answer types are compiled into both builds; only the query's type argument differs.
    types.push(ty("app::query::InlineAnswer", 16_400));
    types.push(ty("app::query::SharedAnswer", 40));
    let imbalanced = if b.inline_error {
        vec![EnumImbalance {
            name: "app::error::DistriErr".into(),
            size: ERR_BIG,
            variant: "Corrupt".into(),
            variant_size: 49_200,
            next_variant: Some("Io".into()),
            next_size: 40,
            suggestion: "box the variant `Corrupt`: its field `__0: app::error::CorruptFragment` is 49,200 bytes; `Box<CorruptFragment>` makes it 8".into(),
        }]
    } else {
        Vec::new()
    };
    // The DWARF of an enum: keep variants for `largest_field`.
    if let Some(t) = types.iter_mut().find(|t| t.name == "app::error::DistriErr") {
        t.kind = TypeKind::Enum;
        t.variants = vec![VariantInfo {
            name: "Io".into(),
            size: 40,
            fields: Vec::new(),
        }];
    }
    sizes(types, futures, imbalanced)
}

fn snapshot_of(b: Build, label: &str) -> Snapshot {
    let mut s = Snapshot::new(
        BuildIdentity {
            label: label.into(),
            ..BuildIdentity::default()
        },
        Workload {
            ops: OPS,
            seed: 7,
            concurrency: 16,
            args: Vec::new(),
        },
    );
    let speed = if b.speed == 0.0 { 1.0 } else { b.speed };
    // The machine drifts a little from run to run; both sides drift together.
    s.wall = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]
        .iter()
        .map(|drift| WallRun {
            ops: OPS,
            ops_per_s: 5000.0 * drift * speed,
            ..WallRun::default()
        })
        .collect();
    let boxed_allocs = if b.boxed_futures { 6 } else { 0 };
    s.alloc = Some(AllocFigures {
        ops: OPS,
        allocations: (20 + boxed_allocs) * OPS,
        deallocations: (20 + boxed_allocs) * OPS,
        bytes_allocated: 100_000 * OPS,
        ..AllocFigures::default()
    });
    let mut heap_sites = vec![HeapSite {
        function: "app::codec::split".into(),
        location: Some("app/src/codec.rs:10".into()),
        via: vec!["alloc::vec::Vec<T>::with_capacity".into()],
        blocks: 20 * OPS,
        bytes: 100_000 * OPS,
    }];
    if b.boxed_futures {
        heap_sites.push(HeapSite {
            function: "<app::store::RemoteStore as app::store::FragmentStore>::get_fragment".into(),
            location: Some("app/src/store.rs:170".into()),
            via: vec!["alloc::boxed::Box<T>::pin".into()],
            blocks: 6 * OPS,
            bytes: 6 * OPS * FUT_BOXED,
        });
    }
    s.heap = Some(HeapFigures {
        ops: OPS,
        blocks: 0,
        bytes: 0,
        sites: heap_sites,
        file: String::new(),
    });
    let mut move_sites = vec![MoveSite {
        function: "app::codec::split".into(),
        location: "app/src/codec.rs:30".into(),
        compiled_in: "app::codec::split".into(),
        size: 4096,
        count: 2 * OPS,
        bytes: 2 * OPS * 4096,
        types: Vec::new(),
    }];
    if b.inline_error {
        move_sites.push(MoveSite {
            function: "app::store::RemoteStore::call::{{closure}}".into(),
            location: "app/src/store.rs:140".into(),
            compiled_in: "app::store::RemoteStore::call::{{closure}}".into(),
            size: ERR_BIG,
            count: 12 * OPS,
            bytes: 12 * OPS * ERR_BIG,
            types: vec![
                "app::error::DistriErr".into(),
                "core::option::Option<app::error::DistriErr>".into(),
            ],
        });
        // A copy of the payload without its tag: no type of this size.
        move_sites.push(MoveSite {
            function: "app::node::log::get::{{closure}}".into(),
            location: "app/src/node/log.rs:216".into(),
            compiled_in: "x".into(),
            size: ERR_BIG - 40,
            count: 4 * OPS,
            bytes: 4 * OPS * (ERR_BIG - 40),
            types: Vec::new(),
        });
    }
    if b.big_query {
        move_sites.push(MoveSite {
            function: "app::query::answer_batch::{{closure}}".into(),
            location: "app/src/query.rs:170".into(),
            compiled_in: "x".into(),
            size: QUERY_BIG,
            count: 3 * OPS,
            bytes: 3 * OPS * QUERY_BIG,
            types: vec!["app::query::Query<app::query::InlineAnswer>".into()],
        });
        // The inline buffer filled in place: answers of various sizes.
        move_sites.push(MoveSite {
            function: "<app::query::InlineAnswer as app::query::AnswerSlot>::store".into(),
            location: "app/src/query.rs:77".into(),
            compiled_in: "x".into(),
            size: 0,
            count: OPS,
            bytes: 3_000 * OPS,
            types: Vec::new(),
        });
    }
    let large: u64 = move_sites.iter().map(|m| m.bytes).sum();
    // The totals by function see every site; the site table is cut (here: the codec's copies
    // of record data are missing from it), as a real one is past its limit.
    let mut functions: Vec<MoveFunction> = Vec::new();
    for m in &move_sites {
        match functions.iter_mut().find(|f| f.function == m.function) {
            Some(f) => {
                f.count += m.count;
                f.bytes += m.bytes;
            }
            None => functions.push(MoveFunction {
                function: m.function.clone(),
                count: m.count,
                bytes: m.bytes,
            }),
        }
    }
    let sites = move_sites
        .into_iter()
        .filter(|m| b.inline_error || b.big_query || m.function != "app::codec::split")
        .collect();
    s.moves = Some(MoveFigures {
        ops: OPS,
        threshold_bytes: 1024,
        copies: 100 * OPS,
        large_copies: functions.iter().map(|m| m.count).sum(),
        large_bytes: large,
        sites,
        functions,
        ..MoveFigures::default()
    });
    // CPU at 1000 Hz over 1000 ops: one sample is 1 µs per operation.
    let copy_samples = 5_000 + large / OPS / 10_000 * 1_000;
    let mut folded = format!(
        "main;app::codec::split (app/src/codec.rs:12) 20000\n\
         main;app::store::RemoteStore::call;__memmove_avx_unaligned_erms {copy_samples}\n\
         main;app::codec::split;malloc 2000\n\
         tokio::runtime::park;epoll_wait {}\n",
        3000 + b.extra_polls * 2 * OPS
    );
    if boxed_allocs > 0 {
        folded.push_str(&format!(
            "main;<app::store::RemoteStore as app::store::FragmentStore>::get_fragment;malloc {}\n",
            boxed_allocs * 500
        ));
    }
    // 2 µs of CPU per `sendto`.
    folded.push_str(&format!(
        "main;app::server::Connection::run (app/src/server.rs:90);tokio::net::TcpStream::poll_write;__libc_sendto {}\n",
        (20 + b.extra_sends) * 2 * OPS / 1000
    ));
    if b.spin_ns > 0 {
        folded.push_str(&format!(
            "main;app::gateway::spin (app/src/gateway.rs:5) {}\n",
            b.spin_ns / 1000 * OPS / 1000
        ));
    }
    if b.zeroing_ns > 0 {
        folded.push_str(&format!(
            "main;app::store::log::read (app/src/store/log.rs:50);__libc_calloc;__memset_avx2_unaligned_erms {}\n\
             main;app::store::log::read (app/src/store/log.rs:52);__libc_pread64 {}\n",
            b.zeroing_ns / 1000 * OPS / 1000,
            OPS
        ));
    }
    s.cpu = Some(CpuFigures::from_folded(&folded, OPS, 1000));
    s.blocking = Some(blocking_of(b));
    s.syscalls = Some(syscalls_of(b));
    s.tasks = Some(tasks_of(b));
    s.sizes = Some(SizeFigures {
        file: "sizes.json".into(),
        prefix: "app".into(),
        types: 0,
    });
    s
}

/// 20 `sendto` and 20 `recvfrom` calls per operation, plus `extra_sends`.
fn syscalls_of(b: Build) -> crate::snapshot::SyscallFigures {
    let text = format!(
        "% time     seconds  usecs/call     calls    errors syscall\n\
         ------ ----------- ----------- --------- --------- ----------------\n\
          50.00    0.100000           1 {:>9}           sendto\n\
          40.00    0.100000           1 {:>9}        12 recvfrom\n\
          10.00    0.100000           1 {:>9}           futex\n",
        (20 + b.extra_sends) * OPS,
        20 * OPS,
        b.futexes * OPS
    );
    crate::snapshot::SyscallFigures::from_strace_summary(&text, OPS).expect("the fixture's table")
}

/// Both sides block 4 µs per operation on a contended lock in the log (the machine's own
/// contention); a build with `fsync_ns` blocks in `app::audit::append` too.
fn blocking_of(b: Build) -> crate::snapshot::BlockingFigures {
    let hz = 1000;
    let contention_ns = 4_000 + b.extra_contention_ns;
    let mut folded = format!(
        "node.get;app::node::log::get (app/src/node/log.rs:200);std::sys::sync::rwlock::futex::RwLock::read_contended;syscall {}\n",
        contention_ns / 1000 * OPS
    );
    if b.fsync_ns > 0 {
        folded.push_str(&format!(
            "gateway.put;app::gateway::put (app/src/gateway.rs:40);app::audit::append (app/src/audit.rs:{});std::fs::File::sync_data;fdatasync {}\n",
            12 + b.fsync_ns % 7,
            b.fsync_ns / 1000 * OPS
        ));
    }
    let mut kinds = std::collections::BTreeMap::new();
    kinds.insert(
        "node.get".to_string(),
        crate::blocking::Blocked {
            ticks: contention_ns * OPS / 1_000_000,
            ns: contention_ns * OPS,
        },
    );
    if b.fsync_ns > 0 {
        kinds.insert(
            "gateway.put".to_string(),
            crate::blocking::Blocked {
                ticks: b.fsync_ns * OPS / 1_000_000,
                ns: b.fsync_ns * OPS,
            },
        );
    }
    let summary = crate::blocking::BlockingSummary {
        version: crate::blocking::BLOCKING_SUMMARY_VERSION,
        hz,
        duration_ns: 1_000_000_000,
        kinds,
        unknown_stack_ns: 0,
        threads_unsampled: 0,
        cost: None,
    };
    crate::snapshot::BlockingFigures::new(&folded, &summary, OPS)
}

/// Task figures: `gateway.get` polls 50 µs and idles 200 µs per operation (plus `extra_idle_ns`).
fn tasks_of(b: Build) -> crate::snapshot::TaskRunFigures {
    let get = crate::tasks::TaskFigures {
        instrumented_count: OPS,
        dropped_count: OPS,
        first_poll_count: OPS,
        total_poll_count: (3 + b.extra_polls) * OPS,
        total_poll_duration_ns: 50_000 * OPS,
        total_scheduled_duration_ns: 10_000 * OPS,
        total_idle_count: 2 * OPS,
        total_idle_duration_ns: (200_000 + b.extra_idle_ns) * OPS,
        ..crate::tasks::TaskFigures::default()
    };
    let written = crate::tasks::Snapshot {
        version: crate::tasks::SNAPSHOT_VERSION,
        enabled: true,
        uptime_ns: 1,
        tasks: [("gateway.get".to_string(), get)].into(),
        runtime: Some(crate::tasks::RuntimeFigures {
            workers_count: 2,
            ..crate::tasks::RuntimeFigures::default()
        }),
        interval: None,
    };
    let json = serde_json::to_string(&written).unwrap();
    crate::snapshot::TaskRunFigures::from_json(&json, OPS).expect("the fixture's tasks.json")
}

struct Pair {
    base: (Snapshot, SizesReport),
    cand: (Snapshot, SizesReport),
}

fn pair(base: Build, cand: Build) -> Pair {
    Pair {
        base: (snapshot_of(base, "base"), sizes_of(base)),
        cand: (snapshot_of(cand, "cand"), sizes_of(cand)),
    }
}

fn run(p: &Pair) -> Comparison {
    compare(
        &Side {
            snapshot: &p.base.0,
            sizes: Some(&p.base.1),
        },
        &Side {
            snapshot: &p.cand.0,
            sizes: Some(&p.cand.1),
        },
        &Thresholds::default(),
    )
}

/// The findings of one kind, in rank order.
fn of_kind(c: &Comparison, kind: FindingKind) -> Vec<&Finding> {
    c.findings.iter().filter(|f| f.kind == kind).collect()
}

/// The default build against `cand`, with the baseline's CPU profile on both sides (the change
/// with no CPU to show for it), has one finding of `kind`, and it is no regression.
fn shown_without_cpu_not_a_regression(cand: Build, kind: FindingKind) {
    let mut p = pair(Build::default(), cand);
    p.cand.0.cpu = p.base.0.cpu.clone();
    let c = run(&p);
    let found = of_kind(&c, kind);
    assert_eq!(found.len(), 1, "{:#?}", c.findings);
    assert!(!found[0].regression && !c.regression, "{:#?}", c.findings);
}

/// The pair's snapshots compared with other sizes reports.
fn with_sizes(p: &Pair, base: &SizesReport, cand: &SizesReport) -> Comparison {
    compare(
        &Side {
            snapshot: &p.base.0,
            sizes: Some(base),
        },
        &Side {
            snapshot: &p.cand.0,
            sizes: Some(cand),
        },
        &Thresholds::default(),
    )
}

fn story() -> Build {
    Build {
        inline_error: true,
        boxed_futures: true,
        big_query: true,
        speed: 0.8,
        ..Build::default()
    }
}

#[test]
fn the_same_build_twice_has_no_finding_and_no_regression() {
    let c = run(&pair(Build::default(), Build::default()));
    assert_eq!(c.findings, Vec::new());
    assert!(!c.regression);
    assert_eq!(c.wall.as_ref().unwrap().verdict, WallVerdict::NoChange);
    assert!(render_markdown(&c).contains("No finding"));
}

#[test]
fn the_inline_error_is_found_with_its_size_its_copies_and_the_variant_to_box() {
    let c = run(&pair(
        Build::default(),
        Build {
            inline_error: true,
            speed: 0.9,
            ..Build::default()
        },
    ));
    assert!(c.regression);
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::TypeGrew);
    assert!(
        top.title
            .starts_with("`DistriErr` grew from 48 B to 49,216 B"),
        "{}",
        top.title
    );
    assert!(top.fix.contains("box the variant `Corrupt`"), "{}", top.fix);
    assert!(top.sites[0].contains("store.rs:140"), "{:?}", top.sites);
    // Both the exact copies and the payload copies without a type of their size.
    assert!(
        top.sites.iter().any(|s| s.contains("log.rs:216")),
        "{:?}",
        top.sites
    );
    let copied = top
        .evidence
        .iter()
        .find(|e| e.what == "bytes copied per operation")
        .unwrap();
    assert_eq!(
        copied.candidate,
        fmt_bytes((12 * ERR_BIG + 4 * (ERR_BIG - 40)) as f64)
    );
    assert!(
        top.evidence
            .iter()
            .any(|e| e.what.contains("Result<SuccessCode, DistriErr>"))
    );
    // The copy CPU grew by 78 samples per op; this finding explains all of it.
    assert!(top.share.unwrap() > 0.9, "{:?}", top.share);
    assert_eq!(c.findings.len(), 1, "{:#?}", c.findings);
}

#[test]
fn boxed_futures_are_found_with_their_sites_and_named_as_async_trait() {
    let c = run(&pair(
        Build::default(),
        Build {
            boxed_futures: true,
            ..Build::default()
        },
    ));
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::BoxedFuture);
    assert!(
        top.title.contains("`FragmentStore::get_fragment`"),
        "{}",
        top.title
    );
    assert!(top.title.contains("#[async_trait]"), "{}", top.title);
    assert!(top.fix.contains("native `async fn`"), "{}", top.fix);
    assert!(top.sites[0].contains("store.rs:170"), "{:?}", top.sites);
    assert_eq!(top.evidence[0].candidate, "6.00");
    assert!(c.regression);
}

#[test]
fn queries_moved_by_value_are_found_with_the_field_to_box() {
    let mut p = pair(
        Build::default(),
        Build {
            big_query: true,
            ..Build::default()
        },
    );
    // Most of the buffer's fills are past the site table's cut: only its totals have them.
    let moves = p.cand.0.moves.as_mut().unwrap();
    let store = moves
        .functions
        .iter_mut()
        .find(|f| f.function.ends_with("AnswerSlot>::store"))
        .unwrap();
    store.count += 5 * OPS;
    store.bytes += 15_000 * OPS;
    moves.large_bytes += 15_000 * OPS;
    let c = run(&p);
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::TypeGrew);
    assert!(top.title.contains("InlineAnswer"), "{}", top.title);
    assert!(top.sites[0].contains("query.rs:170"), "{:?}", top.sites);
    assert!(
        top.sites
            .iter()
            .any(|s| s.contains("query.rs:77") && s.contains("3,000 B on average")),
        "the copies inside the grown type's own methods are its: {:?}",
        top.sites
    );
    assert!(
        !c.findings
            .iter()
            .any(|f| f.kind == FindingKind::Copies && f.title.contains("store")),
        "{:#?}",
        c.findings
    );
}

#[test]
fn all_three_causes_are_found_and_ranked_by_cost() {
    let c = run(&pair(Build::default(), story()));
    let kinds: Vec<_> = c
        .findings
        .iter()
        .map(|f| (f.kind, f.title.clone()))
        .collect();
    assert!(c.findings.len() >= 3, "{kinds:#?}");
    assert!(c.findings[0].title.contains("DistriErr"), "{kinds:#?}");
    assert!(
        c.findings
            .iter()
            .any(|f| f.kind == FindingKind::BoxedFuture),
        "{kinds:#?}"
    );
    assert!(
        !c.findings
            .iter()
            .any(|f| f.kind == FindingKind::Copies && f.title.contains("split")),
        "the codec's copies did not change; a cut site table must not make them look new: {kinds:#?}"
    );
    assert!(
        c.findings.iter().any(|f| f.title.contains("InlineAnswer")),
        "{kinds:#?}"
    );
    let costs: Vec<f64> = c.findings.iter().filter_map(|f| f.cost_ns_per_op).collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    assert_eq!(c.wall.as_ref().unwrap().verdict, WallVerdict::Slower);
    let md = render_markdown(&c);
    assert!(md.contains("### 1. `DistriErr` grew"), "{md}");
    let html = render_html(&c, &[]);
    assert!(html.contains("<code>DistriErr</code>"));
}

#[test]
fn a_wall_time_regression_alone_is_found_with_the_function_that_grew() {
    let c = run(&pair(
        Build::default(),
        Build {
            spin_ns: 3_000_000,
            speed: 0.95,
            ..Build::default()
        },
    ));
    assert!(c.regression);
    assert_eq!(c.wall.as_ref().unwrap().verdict, WallVerdict::Slower);
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::HotSpot, "{:#?}", c.findings);
    assert!(top.title.contains("`spin`"), "{}", top.title);
    assert!(top.sites[0].contains("gateway.rs:5"), "{:?}", top.sites);
    assert!(
        !top.regression,
        "a hot spot explains, the wall time decides"
    );
    assert!(!top.title.contains("zeroing"), "{}", top.title);
}

#[test]
fn a_function_whose_extra_cpu_is_memset_is_said_to_zero_memory() {
    let c = run(&pair(
        Build::default(),
        Build {
            zeroing_ns: 3_000_000,
            speed: 0.95,
            ..Build::default()
        },
    ));
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::HotSpot, "{:#?}", c.findings);
    assert_eq!(
        top.title,
        "`read` uses 4000.0 µs more CPU per operation, 3000.0 µs of it zeroing memory"
    );
    assert!(top.fix.contains("with_capacity"), "{}", top.fix);
}

#[test]
fn a_faster_allocator_is_reported_without_inventing_a_cause() {
    let base = snapshot_of(Build::default(), "base");
    let mut cand = snapshot_of(
        Build {
            speed: 1.1,
            ..Build::default()
        },
        "cand",
    );
    // Less time in the allocator, same allocations.
    let folded = "main;app::codec::split (app/src/codec.rs:12) 20000\n\
                  main;app::store::RemoteStore::call;__memmove_avx_unaligned_erms 5000\n\
                  main;app::codec::split;mi_malloc 500\n\
                  tokio::runtime::park;epoll_wait 3000\n";
    cand.cpu = Some(CpuFigures::from_folded(folded, OPS, 1000));
    let s = sizes_of(Build::default());
    let c = compare(
        &Side {
            snapshot: &base,
            sizes: Some(&s),
        },
        &Side {
            snapshot: &cand,
            sizes: Some(&s),
        },
        &Thresholds::default(),
    );
    // The one finding is the switch itself, which the profiles show: no cause is invented.
    let kinds: Vec<FindingKind> = c.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::AllocatorChanged]);
    let title = &c.findings[0].title;
    assert!(
        title.contains("from glibc malloc to mimalloc") && title.contains("less CPU"),
        "{title}"
    );
    assert!(!c.regression);
    assert_eq!(c.wall.as_ref().unwrap().verdict, WallVerdict::Faster);
    let alloc = c.cpu.as_ref().unwrap().delta(CpuCategory::Alloc);
    assert!(alloc < -1000.0, "{alloc}");
}

/// The base build's CPU profile with its allocation samples in `allocator_leaf` instead.
fn with_allocator(mut snapshot: Snapshot, allocator_leaf: &str, samples: u64) -> Snapshot {
    let folded = format!(
        "main;app::codec::split (app/src/codec.rs:12) 20000\n\
         main;app::store::RemoteStore::call;__memmove_avx_unaligned_erms 5000\n\
         main;app::codec::split;__rust_alloc;{allocator_leaf} {samples}\n\
         tokio::runtime::park;epoll_wait 3000\n"
    );
    snapshot.cpu = Some(CpuFigures::from_folded(&folded, OPS, 1000));
    snapshot
}

fn compared(base: &Snapshot, cand: &Snapshot) -> Comparison {
    let s = sizes_of(Build::default());
    compare(
        &Side {
            snapshot: base,
            sizes: Some(&s),
        },
        &Side {
            snapshot: cand,
            sizes: Some(&s),
        },
        &Thresholds::default(),
    )
}

#[test]
fn a_slower_allocator_is_the_cause_it_names_with_its_cost() {
    let base = with_allocator(snapshot_of(Build::default(), "base"), "_int_malloc", 2000);
    let slower = Build {
        speed: 0.8,
        ..Build::default()
    };
    let cand = with_allocator(snapshot_of(slower, "cand"), "_rjem_je_malloc_default", 6000);
    let c = compared(&base, &cand);
    let first = c.findings.first().expect("a finding");
    assert_eq!(
        first.kind,
        FindingKind::AllocatorChanged,
        "{:#?}",
        c.findings
    );
    assert!(
        first.title.contains("from glibc malloc to jemalloc"),
        "{}",
        first.title
    );
    // 4,000 more samples at 1 kHz over OPS operations.
    let cost = first.cost_ns_per_op.expect("a cost");
    assert!((cost - 4000.0 * 1e6 / OPS as f64).abs() < 1.0, "{cost}");
}

#[test]
fn the_same_allocator_or_too_few_samples_name_no_switch() {
    let base = with_allocator(snapshot_of(Build::default(), "base"), "_int_malloc", 2000);
    let same = with_allocator(snapshot_of(Build::default(), "cand"), "malloc", 6000);
    let few = with_allocator(snapshot_of(Build::default(), "cand"), "mi_malloc", 19);
    for cand in [same, few] {
        let c = compared(&base, &cand);
        assert!(
            c.findings
                .iter()
                .all(|f| f.kind != FindingKind::AllocatorChanged),
            "{:#?}",
            c.findings
        );
    }
}

#[test]
fn missing_probes_are_noted_not_invented() {
    let mut base = snapshot_of(Build::default(), "base");
    let mut cand = snapshot_of(story(), "cand");
    base.heap = None;
    cand.heap = None;
    base.cpu = None;
    let c = compare(
        &Side {
            snapshot: &base,
            sizes: None,
        },
        &Side {
            snapshot: &cand,
            sizes: None,
        },
        &Thresholds::default(),
    );
    assert!(
        c.notes.iter().any(|n| n.contains("no heap profile")),
        "{:?}",
        c.notes
    );
    assert!(
        c.notes.iter().any(|n| n.contains("no sizes report")),
        "{:?}",
        c.notes
    );
    // The counters still show the allocations, without a site.
    assert!(
        c.findings
            .iter()
            .any(|f| f.kind == FindingKind::Allocations && f.sites.is_empty())
    );
    assert!(c.findings.iter().all(|f| f.cost_ns_per_op.is_none()));
}

#[test]
fn without_heap_profiles_boxed_trait_futures_are_found_from_the_sizes() {
    let p = pair(
        Build::default(),
        Build {
            boxed_futures: true,
            ..Build::default()
        },
    );
    let (mut base, mut cand) = (p.base.0.clone(), p.cand.0.clone());
    base.heap = None;
    cand.heap = None;
    let c = compare(
        &Side {
            snapshot: &base,
            sizes: Some(&p.base.1),
        },
        &Side {
            snapshot: &cand,
            sizes: Some(&p.cand.1),
        },
        &Thresholds::default(),
    );
    let top = &c.findings[0];
    assert_eq!(top.kind, FindingKind::BoxedFuture, "{:#?}", c.findings);
    assert!(
        top.title.contains("up to 1,184 B each): `get_fragment`"),
        "{}",
        top.title
    );
    assert!(top.regression, "the counters show the extra allocations");
}

#[test]
fn stack_frames_that_grew_are_reported_and_huge_ones_fail() {
    let p = pair(Build::default(), Build::default());
    let (mut base_sizes, mut cand_sizes) = (p.base.1.clone(), p.cand.1.clone());
    let frame = |bytes| crate::sizes::StackFrame {
        function: "app::store::RemoteStore::call::{{closure}}".into(),
        address: 0x1000,
        frame_bytes: bytes,
        source: "cfi".into(),
    };
    base_sizes.stack_frames.functions = vec![frame(512)];
    cand_sizes.stack_frames.functions = vec![frame(300 * 1024)];
    let c = with_sizes(&p, &base_sizes, &cand_sizes);
    let f = c
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::StackFrames)
        .unwrap();
    assert!(f.title.contains("`RemoteStore::call`"), "{}", f.title);
    assert!(f.title.contains("307,200 B"), "{}", f.title);
    assert!(f.regression);
    // The same frame under a new name (the function renamed) did not grow.
    let mut renamed = frame(300 * 1024);
    renamed.function = "app::store::RemoteStore::request::{{closure}}".into();
    base_sizes.stack_frames.functions = vec![frame(300 * 1024)];
    cand_sizes.stack_frames.functions = vec![renamed];
    let c = with_sizes(&p, &base_sizes, &cand_sizes);
    assert!(
        c.findings
            .iter()
            .all(|f| f.kind != FindingKind::StackFrames),
        "{:#?}",
        c.findings
    );
}

#[test]
fn a_kind_polled_much_more_with_the_executor_busier_is_a_polls_finding() {
    let c = run(&pair(
        Build::default(),
        Build {
            extra_polls: 6,
            speed: 0.8,
            ..Build::default()
        },
    ));
    let polls = of_kind(&c, FindingKind::Polls);
    assert_eq!(polls.len(), 1, "{:#?}", c.findings);
    assert!(
        polls[0]
            .title
            .starts_with("task kind `gateway.get` is polled 9.00 times per operation (was 3.00)"),
        "{}",
        polls[0].title
    );
    assert!(polls[0].regression);
    assert_eq!(c.findings[0].kind, FindingKind::Polls, "{:#?}", c.findings);
    // As many more polls with no extra executor time are shown, not a regression.
    shown_without_cpu_not_a_regression(
        Build {
            extra_polls: 6,
            ..Build::default()
        },
        FindingKind::Polls,
    );
}

#[test]
fn copies_through_a_library_function_name_the_caller_whose_calls_grew() {
    let library = "bytes::bytes_mut::BytesMut::extend_from_slice";
    let caller = |function: &str, samples: u64| LibraryCaller {
        library: library.into(),
        caller: function.into(),
        location: Some("app/src/wire.rs:10".into()),
        samples,
    };
    let findings = |with_callers: bool| {
        let mut p = pair(Build::default(), Build::default());
        let sides = [(&mut p.base.0, 10_000, 20), (&mut p.cand.0, 30_000, 60)];
        for (side, per_op, new_calls) in sides {
            let moves = side.moves.as_mut().unwrap();
            moves.functions.push(MoveFunction {
                function: library.into(),
                count: 4 * OPS,
                bytes: per_op * OPS,
            });
            moves.large_bytes += per_op * OPS;
            if with_callers {
                moves.library_callers_ops = OPS;
                moves.library_callers = vec![
                    caller("app::wire::send", 40),
                    caller("app::gateway::Gateway::put", new_calls),
                ];
            }
        }
        run(&p)
            .findings
            .into_iter()
            .find(|f| f.kind == FindingKind::Copies)
            .expect("the copies tripled")
    };
    let named = findings(true);
    assert!(
        named.title.starts_with(
            "`Gateway::put` copies 30,000 B per operation through `BytesMut::extend_from_slice`"
        ),
        "{}",
        named.title
    );
    assert!(
        named.sites[0].contains("via `BytesMut::extend_from_slice`"),
        "{:?}",
        named.sites
    );
    // Without the CPU profile's stacks, the library function is all there is to name.
    let unnamed = findings(false);
    assert!(
        unnamed
            .title
            .starts_with("`BytesMut::extend_from_slice` copies"),
        "{}",
        unnamed.title
    );
}

#[test]
fn copies_through_an_io_buffer_are_called_data_not_moved_values() {
    let mut p = pair(Build::default(), Build::default());
    let buffer_copy = |per_op: u64| MoveFunction {
        function: "tokio::io::read_buf::ReadBuf::put_slice".into(),
        count: 4 * OPS,
        bytes: per_op * OPS,
    };
    for (side, per_op) in [(&mut p.base.0, 10_000), (&mut p.cand.0, 30_000)] {
        let moves = side.moves.as_mut().unwrap();
        moves.functions.push(buffer_copy(per_op));
        moves.large_bytes += per_op * OPS;
    }
    let c = run(&p);
    let found = c
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Copies)
        .expect("the buffer's copies tripled");
    assert!(
        found.title.contains("ReadBuf::put_slice"),
        "{}",
        found.title
    );
    assert!(found.fix.contains("an I/O buffer"), "{}", found.fix);
    assert!(!found.fix.contains("box the large part"), "{}", found.fix);
}

#[test]
fn copies_through_a_library_function_seen_from_one_caller_name_it_however_few_its_samples() {
    let library = "reed_solomon_simd::engine::shards::Shards::insert";
    let mut p = pair(Build::default(), Build::default());
    for (side, per_op) in [(&mut p.base.0, 3_000), (&mut p.cand.0, 6_000)] {
        let moves = side.moves.as_mut().unwrap();
        moves.functions.push(MoveFunction {
            function: library.into(),
            count: 2 * OPS,
            bytes: per_op * OPS,
        });
        moves.sites.push(MoveSite {
            function: library.into(),
            location: "reed-solomon-simd-3.1.0/src/engine/shards.rs:49".into(),
            compiled_in: library.into(),
            size: per_op / 2,
            count: 2 * OPS,
            bytes: per_op * OPS,
            types: Vec::new(),
        });
        moves.large_bytes += per_op * OPS;
    }
    let cand = p.cand.0.moves.as_mut().unwrap();
    cand.library_callers_ops = OPS;
    cand.library_callers = vec![LibraryCaller {
        library: library.into(),
        caller: "app::codec::encode_parity".into(),
        location: Some("app/src/codec.rs:335".into()),
        samples: 1,
    }];
    let c = run(&p);
    let found = of_kind(&c, FindingKind::Copies);
    assert_eq!(found.len(), 1, "{:#?}", c.findings);
    assert!(
        found[0]
            .title
            .starts_with("`encode_parity` copies 6,000 B per operation through `Shards::insert`"),
        "{}",
        found[0].title
    );
}

#[test]
fn copies_of_sizes_no_type_has_are_data_and_of_a_type_size_a_moved_value() {
    let fix_for = |types: Vec<String>| {
        let mut p = pair(Build::default(), Build::default());
        for (side, count) in [(&mut p.base.0, OPS), (&mut p.cand.0, 3 * OPS)] {
            let moves = side.moves.as_mut().unwrap();
            moves.functions.push(MoveFunction {
                function: "app::codec::Encoder::add_shard".into(),
                count,
                bytes: 14_720 * count,
            });
            moves.sites.push(MoveSite {
                function: "app::codec::Encoder::add_shard".into(),
                location: "app/src/codec.rs:50".into(),
                compiled_in: "app::codec::Encoder::add_shard".into(),
                size: 14_720,
                count,
                bytes: 14_720 * count,
                types: types.clone(),
            });
            moves.large_bytes += 14_720 * count;
        }
        let c = run(&p);
        let found = of_kind(&c, FindingKind::Copies);
        assert_eq!(found.len(), 1, "{:#?}", c.findings);
        found[0].fix.clone()
    };
    let data = fix_for(Vec::new());
    assert!(data.contains("copied from one buffer to another"), "{data}");
    let moved = fix_for(vec!["app::codec::Block".into()]);
    assert!(moved.contains("a large value is moved here"), "{moved}");
}

#[test]
fn copies_charged_to_another_function_by_different_inlining_are_not_new() {
    let mut p = pair(Build::default(), Build::default());
    // The candidate's build did not inline `Vec::clone` into its caller: the same bytes are
    // charged to the clone instead.
    let moved = |function: &str| MoveFunction {
        function: function.into(),
        count: 2 * OPS,
        bytes: 20_000 * OPS,
    };
    for (side, function) in [
        (&mut p.base.0, "app::gateway::put"),
        (
            &mut p.cand.0,
            "<alloc::vec::Vec<T,A> as core::clone::Clone>::clone",
        ),
    ] {
        let moves = side.moves.as_mut().unwrap();
        moves.functions.push(moved(function));
        moves.large_bytes += 20_000 * OPS;
    }
    let c = run(&p);
    assert_eq!(c.findings, Vec::new());
    assert!(!c.regression);
}

#[test]
fn a_machine_slower_during_one_cpu_pass_makes_no_hot_spot() {
    let mut p = pair(Build::default(), Build::default());
    // Another program ran during the candidate's CPU pass: every function took 40% longer.
    let cpu = p.cand.0.cpu.as_mut().unwrap();
    let slower = |n: u64| n * 14 / 10;
    cpu.samples = slower(cpu.samples);
    for f in &mut cpu.functions {
        f.samples = slower(f.samples);
    }
    for n in cpu.categories.values_mut() {
        *n = slower(*n);
    }
    let c = run(&p);
    assert!(
        !c.findings.iter().any(|f| f.kind == FindingKind::HotSpot),
        "{:#?}",
        c.findings
    );
}

#[test]
fn an_allocation_site_whose_lines_moved_is_the_same_site() {
    let mut p = pair(Build::default(), Build::default());
    let heap = p.cand.0.heap.as_mut().unwrap();
    // Three lines were added above the allocation: same function, file and path.
    heap.sites[0].location = Some("app/src/codec.rs:13".into());
    let c = run(&p);
    assert_eq!(c.findings, Vec::new(), "{:#?}", c.findings);
    assert!(!c.regression);
}

#[test]
fn an_allocation_moved_into_a_helper_is_the_same_allocation() {
    let moved = |via: &str, process_grew: bool| {
        let mut p = pair(Build::default(), Build::default());
        let site = &mut p.cand.0.heap.as_mut().unwrap().sites[0];
        // `split`'s buffer is now allocated by a helper it calls, in another file.
        site.function = "app::codec::buffers::prepare".into();
        site.location = Some("app/src/codec/buffers.rs:7".into());
        site.via = vec![via.into()];
        let blocks = site.blocks;
        if process_grew {
            p.cand.0.alloc.as_mut().unwrap().allocations += blocks;
        }
        run(&p)
    };
    let c = moved("alloc::vec::Vec<T>::with_capacity", false);
    assert_eq!(c.findings, Vec::new(), "{:#?}", c.findings);
    // Through another frame, with the process allocating that much more, it is another
    // allocation; with the process's count unchanged, it moved (the next test).
    let c = moved("alloc::boxed::Box<T>::new", true);
    assert!(
        c.findings
            .iter()
            .any(|f| f.kind == FindingKind::Allocations),
        "{:#?}",
        c.findings
    );
}

#[test]
fn a_new_site_the_process_count_does_not_show_is_a_moved_allocation_not_a_finding() {
    // The baseline's site vanishes and one of another function appears, the process's
    // allocations per operation unchanged: a function split or renamed, not a new cost.
    let mut p = pair(Build::default(), Build::default());
    let site = &mut p.cand.0.heap.as_mut().unwrap().sites[0];
    site.function = "app::codec::shards_of".into();
    site.location = Some("app/src/codec.rs:90".into());
    site.via = vec!["alloc::boxed::Box<T>::new".into()];
    let c = run(&p);
    assert!(
        c.findings
            .iter()
            .all(|f| f.kind != FindingKind::Allocations),
        "{:#?}",
        c.findings
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("`shards_of`") && n.contains("moved")),
        "{:#?}",
        c.notes
    );
}

#[test]
fn a_block_the_size_of_a_future_is_a_boxed_future_only_through_box_pin_or_box_new() {
    // A new site allocating blocks exactly a boxed future's size through `Vec::with_capacity`
    // is an allocation, not a boxed future; the same through `Box::pin` is one.
    let site = |via: &str| HeapSite {
        function: "app::gateway::Gateway::read_fragments::{{closure}}".into(),
        location: Some("app/src/gateway.rs:284".into()),
        via: vec![via.into()],
        blocks: 2 * OPS,
        bytes: 2 * OPS * FUT_BOXED,
    };
    let kinds = |via: &str| {
        let mut p = pair(Build::default(), Build::default());
        p.cand.1 = sizes_of(Build {
            boxed_futures: true,
            ..Build::default()
        });
        p.cand.0.heap.as_mut().unwrap().sites.push(site(via));
        let alloc = p.cand.0.alloc.as_mut().unwrap();
        alloc.allocations += 2 * OPS;
        run(&p).findings.iter().map(|f| f.kind).collect::<Vec<_>>()
    };
    let vec_buffer = kinds("alloc::vec::Vec<T>::with_capacity");
    assert!(
        !vec_buffer.contains(&FindingKind::BoxedFuture),
        "{vec_buffer:?}"
    );
    assert!(
        vec_buffer.contains(&FindingKind::Allocations),
        "{vec_buffer:?}"
    );
    let pinned = kinds("alloc::boxed::Box<T>::pin");
    assert!(pinned.contains(&FindingKind::BoxedFuture), "{pinned:?}");
}

#[test]
fn more_buffers_of_a_grown_type_are_its_symptom_only_when_their_bytes_are_whole_elements() {
    // A `Vec<Query>` collected per request: 4 elements fit its first buffer while a query is
    // 64 B; at 16,480 B it starts at 1 and grows twice.
    let site = |blocks: u64, bytes: u64| HeapSite {
        function: "app::gateway::Gateway::read_fragments::{{closure}}".into(),
        location: Some("app/src/gateway.rs:305".into()),
        via: vec!["alloc::vec::Vec<T>::from_iter".into()],
        blocks,
        bytes,
    };
    let findings = |extra_bytes: u64| {
        let mut p = pair(
            Build::default(),
            Build {
                big_query: true,
                ..Build::default()
            },
        );
        let base = p.base.0.heap.as_mut().unwrap();
        base.sites.push(site(OPS, OPS * 4 * 64));
        let cand = p.cand.0.heap.as_mut().unwrap();
        cand.sites
            .push(site(3 * OPS, OPS * 7 * QUERY_BIG + extra_bytes));
        p.cand.0.alloc.as_mut().unwrap().allocations += 2 * OPS;
        run(&p)
            .findings
            .into_iter()
            .filter(|f| f.kind == FindingKind::Allocations)
            .collect::<Vec<_>>()
    };
    let buffers = findings(0);
    assert_eq!(buffers.len(), 1, "{buffers:#?}");
    assert!(buffers[0].symptom && !buffers[0].regression, "{buffers:#?}");
    assert!(
        buffers[0].title.contains("buffers of `Query"),
        "{}",
        buffers[0].title
    );
    // Bytes that are no whole number of queries are allocations of their own.
    let other = findings(48);
    assert_eq!(other.len(), 1, "{other:#?}");
    assert!(other[0].regression && !other[0].symptom, "{other:#?}");
}

#[test]
fn a_sync_on_the_runtime_thread_is_named_first_with_its_call_and_the_fix() {
    let c = run(&pair(
        Build::default(),
        Build {
            fsync_ns: 300_000,
            speed: 0.7,
            ..Build::default()
        },
    ));
    assert!(c.regression);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Blocking, "{:#?}", c.findings);
    assert!(first.title.contains("`append`"), "{}", first.title);
    assert!(first.title.contains("sync"), "{}", first.title);
    assert!(
        first.sites[0].contains("app/src/audit.rs"),
        "{:?}",
        first.sites
    );
    assert!(first.sites[0].contains("`fdatasync`"), "{:?}", first.sites);
    assert!(first.fix.contains("spawn_blocking"), "{}", first.fix);
    // The lock contention both sides share is not a finding.
    assert_eq!(
        c.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Blocking)
            .count(),
        1
    );
    let get = c.tasks.iter().find(|t| t.kind == "gateway.get").unwrap();
    assert_eq!(get.blocked_ns_per_op, Some((0.0, 0.0)));
    assert!(render_markdown(&c).contains("**Most likely cause:** `append` blocks"));
}

#[test]
fn a_lock_contended_before_that_waits_longer_beside_a_new_sync_is_its_symptom() {
    let c = run(&pair(
        Build::default(),
        Build {
            fsync_ns: 300_000,
            extra_contention_ns: 40_000,
            speed: 0.7,
            ..Build::default()
        },
    ));
    let blocking = of_kind(&c, FindingKind::Blocking);
    assert_eq!(blocking.len(), 2, "{:#?}", c.findings);
    assert!(blocking[0].title.contains("`append`") && blocking[0].regression);
    assert!(blocking[1].title.contains("`get`"), "{}", blocking[1].title);
    assert!(!blocking[1].regression, "the lock's growth is a symptom");
    assert!(blocking[1].fix.contains("symptom"), "{}", blocking[1].fix);
    // Alone, the same growth of the lock is a cause.
    let alone = run(&pair(
        Build::default(),
        Build {
            extra_contention_ns: 40_000,
            speed: 0.9,
            ..Build::default()
        },
    ));
    assert!(alone.findings[0].regression && alone.findings[0].title.contains("`get`"));
    // The same growth while the wall time stays and nothing else changed: the machine's load.
    let quiet = run(&pair(
        Build::default(),
        Build {
            extra_contention_ns: 40_000,
            ..Build::default()
        },
    ));
    assert!(quiet.findings.is_empty(), "{:#?}", quiet.findings);
}

#[test]
fn a_blocking_call_that_moved_lines_is_the_same_call() {
    let c = run(&pair(
        Build {
            fsync_ns: 300_000,
            ..Build::default()
        },
        Build {
            fsync_ns: 300_001,
            ..Build::default()
        },
    ));
    assert!(c.findings.is_empty(), "{:#?}", c.findings);
}

#[test]
fn a_blocking_call_whose_function_was_renamed_is_the_same_call() {
    let fsync = Build {
        fsync_ns: 300_000,
        ..Build::default()
    };
    let mut p = pair(fsync, fsync);
    let blocking = p.cand.0.blocking.as_mut().unwrap();
    let renamed = blocking
        .functions
        .iter_mut()
        .filter(|f| f.function == "app::audit::append")
        .map(|f| f.function = "app::audit::append_line".into())
        .count();
    assert_eq!(renamed, 1);
    let c = run(&p);
    assert!(c.findings.is_empty(), "{:#?}", c.findings);
}

#[test]
fn waiting_that_cpu_and_blocking_do_not_explain_names_the_task_kind() {
    let c = run(&pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            speed: 0.7,
            ..Build::default()
        },
    ));
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Waiting, "{:#?}", c.findings);
    assert!(first.title.contains("`gateway.get`"), "{}", first.title);
    assert!(first.fix.contains(".await"), "{}", first.fix);
}

#[test]
fn fewer_worker_threads_with_the_operations_slower_is_the_cause_and_the_waiting_its_symptom() {
    let with_workers = |workers: u64, speed: f64, machine: &str| {
        let mut p = pair(
            Build::default(),
            Build {
                extra_idle_ns: 400_000,
                speed,
                ..Build::default()
            },
        );
        let tasks = p.cand.0.tasks.as_mut().unwrap();
        tasks.runtime.as_mut().unwrap().workers_count = workers;
        if !machine.is_empty() {
            p.cand.0.build.machine = machine.into();
        }
        run(&p)
    };
    let c = with_workers(1, 0.7, "");
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::RuntimeChanged, "{:#?}", c.findings);
    assert_eq!(first.title, "the runtime runs 1 worker thread (was 2)");
    assert!(first.regression && first.cost_ns_per_op.is_some_and(|ns| ns > 0.0));
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert!(
        waiting.iter().all(|w| w.symptom && !w.regression),
        "{:#?}",
        c.findings
    );
    // The same count on both sides is no finding; a change with the speed unchanged explains
    // a change but is no regression.
    assert!(of_kind(&with_workers(2, 0.7, ""), FindingKind::RuntimeChanged).is_empty());
    let unchanged_speed = with_workers(4, 1.0, "");
    let runtime = of_kind(&unchanged_speed, FindingKind::RuntimeChanged);
    assert_eq!(runtime.len(), 1, "{:#?}", unchanged_speed.findings);
    assert!(!runtime[0].regression);
    // On a machine with fewer cores tokio starts fewer workers: said, never a regression.
    let elsewhere = with_workers(1, 0.7, "1 core, another CPU");
    let runtime = of_kind(&elsewhere, FindingKind::RuntimeChanged);
    assert!(!runtime[0].regression, "{:#?}", runtime);
    assert!(
        runtime[0].fix.contains("different machines"),
        "{}",
        runtime[0].fix
    );
}

/// Both sides with a `node.get` kind: `per_op` tasks per operation, each polled 1.5 times for
/// 10 µs.
fn with_node_gets(p: &mut Pair, before: f64, after: f64) {
    for (side, per_op) in [(&mut p.base.0, before), (&mut p.cand.0, after)] {
        let tasks = (per_op * OPS as f64) as u64;
        let figures = crate::tasks::TaskFigures {
            instrumented_count: tasks,
            dropped_count: tasks,
            first_poll_count: tasks,
            total_poll_count: tasks * 3 / 2,
            total_poll_duration_ns: tasks * 10_000,
            ..crate::tasks::TaskFigures::default()
        };
        let kinds = &mut side.tasks.as_mut().unwrap().kinds;
        kinds.insert("node.get".into(), figures);
    }
}

#[test]
fn a_kind_that_runs_more_tasks_per_operation_is_the_fan_out_that_costs_their_polls() {
    // The extra tasks' requests go out through the connection loop: 20 → 28 `sendto`s per
    // operation, ×1.4 beside the tasks' ×1.5.
    let mut p = pair(
        Build::default(),
        Build {
            speed: 0.8,
            extra_sends: 8,
            ..Build::default()
        },
    );
    with_node_gets(&mut p, 6.0, 9.0);
    let c = run(&p);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::FanOut, "{:#?}", c.findings);
    assert_eq!(
        first.title,
        "task kind `node.get` runs 9.00 times per operation (was 6.00): each operation asks for \
         1.50× as many"
    );
    assert!(first.regression);
    assert_eq!(
        first.cost_ns_per_op,
        Some(30_000.0),
        "3 more tasks of 10 µs each"
    );
    // The same tasks per operation on both sides: no fan-out.
    // Its symptoms' costs are part of its own: the lead counts each change once.
    let sends = of_kind(&c, FindingKind::Syscalls);
    assert!(
        sends.len() == 1 && sends[0].symptom && sends[0].share.is_some_and(|s| s > 0.0),
        "{:#?}",
        c.findings
    );
    let lead = render_markdown(&c);
    let explained = render::explained_share(&c);
    let with_symptoms: f64 = c.findings.iter().filter_map(|f| f.share).sum();
    assert!(
        explained < with_symptoms.min(1.0),
        "{explained} {with_symptoms}"
    );
    assert!(
        lead.contains(&format!(
            "The findings explain an estimated {:.0}%",
            explained * 100.0
        )),
        "{lead}"
    );
    let mut same = pair(Build::default(), Build::default());
    with_node_gets(&mut same, 6.0, 6.0);
    assert!(of_kind(&run(&same), FindingKind::FanOut).is_empty());
}

#[test]
fn counts_that_grew_no_faster_than_the_extra_tasks_are_the_fan_outs_symptoms() {
    let finding = |kind: FindingKind, title: &str, counts: (f64, f64)| Finding {
        kind,
        title: title.into(),
        evidence: Vec::new(),
        sites: Vec::new(),
        functions: Vec::new(),
        cost_ns_per_op: Some(1.0),
        share: None,
        fix: String::new(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some(counts),
    };
    let mut findings = vec![
        finding(FindingKind::FanOut, "fan-out", (6.0, 9.0)),
        Finding {
            sites: vec!["`Conn::call` (app/src/conn.rs:40)".into()],
            ..finding(FindingKind::Syscalls, "sendto", (15.0, 21.0))
        },
        finding(FindingKind::Allocations, "new buffers", (1.5, 4.5)),
        finding(FindingKind::Copies, "from nothing", (0.0, 2_000.0)),
        Finding {
            regression: false,
            ..finding(
                FindingKind::Syscalls,
                "recvfrom, no caller seen",
                (20.0, 26.0),
            )
        },
    ];
    fan_out::mark_symptoms(&mut findings);
    let symptoms: Vec<&str> = findings
        .iter()
        .filter(|f| f.symptom)
        .map(|f| f.title.as_str())
        .collect();
    assert_eq!(
        symptoms,
        ["sendto", "recvfrom, no caller seen"],
        "×1.4 and ×1.3 follow ×1.5; ×3 and new ones do not"
    );
    assert!(findings[1].fix.contains("symptom of: fan-out"));
    assert_eq!(
        findings[0].sites,
        ["the extra work shows in `Conn::call` (app/src/conn.rs:40)"],
        "the fan-out lists where its symptoms' work is done"
    );
}

#[test]
fn waiting_beside_a_new_blocking_call_is_its_symptom() {
    let c = run(&pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            fsync_ns: 100_000,
            speed: 0.6,
            ..Build::default()
        },
    ));
    assert_eq!(
        c.findings[0].kind,
        FindingKind::Blocking,
        "{:#?}",
        c.findings
    );
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert_eq!(waiting.len(), 1, "{:#?}", c.findings);
    assert!(waiting[0].symptom && !waiting[0].regression);
    assert!(
        waiting[0].fix.contains("symptom of: `append`"),
        "{}",
        waiting[0].fix
    );
}

#[test]
fn waiting_that_extra_cpu_explains_is_a_symptom_not_a_finding() {
    // 200 µs more CPU per operation on two workers is 100 µs of wall time per operation:
    // throughput 5,000 → 3,333 ops/s, all of it explained.
    let c = run(&pair(
        Build::default(),
        Build {
            spin_ns: 200_000,
            extra_idle_ns: 400_000,
            speed: 2.0 / 3.0,
            ..Build::default()
        },
    ));
    assert!(
        c.findings.iter().all(|f| f.kind != FindingKind::Waiting),
        "{:#?}",
        c.findings
    );
}

#[test]
fn many_more_small_writes_are_named_with_the_function_that_makes_them() {
    let c = run(&pair(
        Build::default(),
        Build {
            extra_sends: 30,
            speed: 0.9,
            ..Build::default()
        },
    ));
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Syscalls, "{:#?}", c.findings);
    assert!(
        first.title.contains("30.00 more `sendto`"),
        "{}",
        first.title
    );
    assert!(first.title.contains("`Connection::run`"), "{}", first.title);
    assert!(
        first.sites[0].contains("app/src/server.rs:90"),
        "{:?}",
        first.sites
    );
    assert!(first.fix.contains("BufWriter"), "{}", first.fix);
    assert!(first.regression);
    // As many more calls that no function's CPU samples show (the runtime's wake-ups) are
    // shown, not a regression.
    shown_without_cpu_not_a_regression(
        Build {
            extra_sends: 30,
            ..Build::default()
        },
        FindingKind::Syscalls,
    );
}

#[test]
fn scheduling_system_calls_that_follow_the_timing_are_not_compared() {
    let c = run(&pair(
        Build {
            futexes: 10,
            ..Build::default()
        },
        Build {
            futexes: 40,
            ..Build::default()
        },
    ));
    assert!(c.findings.is_empty(), "{:#?}", c.findings);
}

#[test]
fn types_that_grew_by_holding_a_new_type_in_a_field_or_variant_are_one_finding_under_it() {
    let field = |name: &str, type_name: &str, size: u64| FieldInfo {
        name: name.into(),
        type_name: type_name.into(),
        size,
        offset: 0,
        is_future: false,
    };
    let with = |mut t: TypeInfo, fields: Vec<FieldInfo>, variants: Vec<VariantInfo>| {
        t.fields = fields;
        t.variants = variants;
        t
    };
    let base = sizes(
        vec![
            ty("app::log::Entry", 80),
            with(
                ty("app::log::Append", 96),
                vec![field("entry", "app::log::Entry", 80)],
                Vec::new(),
            ),
        ],
        Vec::new(),
        Vec::new(),
    );
    let cand = sizes(
        vec![
            ty("app::log::Plan", 24_576),
            with(
                ty("app::log::Entry", 24_584),
                Vec::new(),
                vec![VariantInfo {
                    name: "Compact".into(),
                    size: 24_576,
                    fields: vec![field("__0", "app::log::Plan", 24_576)],
                }],
            ),
            with(
                ty("app::log::Append", 24_600),
                vec![field("entry", "app::log::Entry", 24_584)],
                Vec::new(),
            ),
        ],
        Vec::new(),
        Vec::new(),
    );
    let snapshot = snapshot_of(Build::default(), "same");
    let c = compare(
        &Side {
            snapshot: &snapshot,
            sizes: Some(&base),
        },
        &Side {
            snapshot: &snapshot,
            sizes: Some(&cand),
        },
        &Thresholds::default(),
    );
    let grown = of_kind(&c, FindingKind::TypeGrew);
    assert_eq!(grown.len(), 1, "{grown:#?}");
    assert!(
        grown[0].title.starts_with("`Plan` (24,576 B) appeared"),
        "{}",
        grown[0].title
    );
    assert!(
        grown[0]
            .evidence
            .iter()
            .any(|e| e.what == "types that grew with it" && e.candidate.starts_with('2')),
        "{:?}",
        grown[0].evidence
    );
}

#[test]
fn a_task_spawned_per_call_is_named_as_a_spawn_first_and_not_again_as_an_allocation() {
    // A new site whose blocks go through `spawn_blocking` is a task per call; the same blocks
    // through `Box::new` are an allocation site.
    let site = |via: &[&str]| HeapSite {
        function: "app::node::LocalStore::get_fragment::{{closure}}".into(),
        location: Some("app/src/node.rs:120".into()),
        via: via.iter().map(|v| v.to_string()).collect(),
        blocks: 3 * OPS,
        bytes: 3 * OPS * 256,
    };
    let findings = |via: &[&str]| {
        // Each spawned task wakes the one that awaits it: 3 more polls per operation.
        let mut p = pair(
            Build::default(),
            Build {
                extra_polls: 3,
                ..Build::default()
            },
        );
        p.cand.0.heap.as_mut().unwrap().sites.push(site(via));
        p.cand.0.alloc.as_mut().unwrap().allocations += 3 * OPS;
        // Each task's future is moved into its cell: copies charged to tokio's functions.
        let moves = p.cand.0.moves.as_mut().unwrap();
        moves.functions.push(MoveFunction {
            function: "tokio::runtime::task::core::Cell<T,S>::new".into(),
            count: 3 * OPS,
            bytes: 3 * OPS * 1536,
        });
        moves.large_bytes += 3 * OPS * 1536;
        run(&p).findings
    };
    let spawned = findings(&[
        "tokio::task::blocking::spawn_blocking",
        "tokio::runtime::blocking::pool::spawn_blocking",
    ]);
    let first = &spawned[0];
    assert_eq!(first.kind, FindingKind::TaskPerCall, "{spawned:#?}");
    assert!(
        first
            .title
            .contains("spawns a task on the blocking pool per call"),
        "{}",
        first.title
    );
    assert!(
        first.sites[0].contains("app/src/node.rs:120"),
        "{:?}",
        first.sites
    );
    assert!(
        !spawned.iter().any(|f| f.kind == FindingKind::Allocations),
        "the spawn's allocations are the spawn's: {spawned:#?}"
    );
    assert!(
        spawned
            .iter()
            .filter(|f| f.kind == FindingKind::Polls)
            .all(|f| f.symptom && !f.regression),
        "the extra polls are the spawn's: {spawned:#?}"
    );
    assert!(
        first
            .evidence
            .iter()
            .any(|e| e.what == "bytes copied into new tasks per operation"),
        "{first:#?}"
    );
    assert!(
        !spawned.iter().any(|f| f.kind == FindingKind::Copies),
        "the copies into the tasks are the spawn's: {spawned:#?}"
    );
    let boxed = findings(&["alloc::boxed::Box<T>::new"]);
    assert!(
        !boxed.iter().any(|f| f.kind == FindingKind::TaskPerCall),
        "{boxed:#?}"
    );
    assert!(boxed.iter().any(|f| f.kind == FindingKind::Allocations));
}

#[test]
fn values_that_only_just_crossed_the_tracers_threshold_are_not_new_copies() {
    // A wrapper future of 1,120 B was 1,000 B before: the baseline's copies of it were under the
    // tracer's 1 KiB threshold. A new 8 KiB copy per operation is a new copy.
    let copies = |size: u64| {
        let mut p = pair(Build::default(), Build::default());
        let moves = p.cand.0.moves.as_mut().unwrap();
        let function = "app::server::Connection::run::{{closure}}";
        moves.sites.push(MoveSite {
            function: function.into(),
            location: "app/src/server.rs:235".into(),
            compiled_in: function.into(),
            size,
            count: 7 * OPS,
            bytes: 7 * OPS * size,
            types: Vec::new(),
        });
        moves.functions.push(MoveFunction {
            function: function.into(),
            count: 7 * OPS,
            bytes: 7 * OPS * size,
        });
        moves.large_bytes += 7 * OPS * size;
        run(&p)
            .findings
            .into_iter()
            .filter(|f| f.kind == FindingKind::Copies && f.title.contains("Connection::run"))
            .count()
    };
    assert_eq!(copies(1120), 0);
    assert_eq!(copies(8192), 1);
}

/// Console figures: the server's semaphore, waited on briefly per operation; and, when
/// `lock_wait_ns` is not 0, a `Mutex` in the gateway that `gateway.conn` tasks wait on that
/// long per operation; `line` is where the mutex is created.
fn console_of(lock_wait_ns: u64, line: u32) -> crate::snapshot::ConsoleFigures {
    use crate::snapshot::{ConsoleFigures, ResourceWaits, TaskWaits};
    let waits = TaskWaits {
        waits: OPS,
        wait_ns: (lock_wait_ns * OPS) as f64,
    };
    let site = |concrete_type: &str, location: String, wait_ns: u64| ResourceWaits {
        concrete_type: concrete_type.into(),
        kind: "Sync".into(),
        location,
        resources: 1,
        waits: OPS,
        wait_ns: (wait_ns * OPS) as f64,
        tasks: [("gateway.conn".to_string(), waits)].into(),
        kinds: [("gateway.get".to_string(), waits)].into(),
    };
    let mut resources = vec![site("Semaphore", "app/src/server.rs:78".into(), 2_000)];
    if lock_wait_ns > 0 {
        resources.push(site(
            "Mutex",
            format!("app/src/gateway.rs:{line}"),
            lock_wait_ns,
        ));
    }
    ConsoleFigures {
        ops: OPS,
        updates: 30,
        resources,
        ..ConsoleFigures::default()
    }
}

#[test]
fn a_lock_the_tasks_wait_on_longer_is_named_where_it_was_created_and_the_waiting_is_its_symptom() {
    let mut p = pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            speed: 0.7,
            ..Build::default()
        },
    );
    p.base.0.console = Some(console_of(0, 0));
    p.cand.0.console = Some(console_of(300_000, 120));
    let c = run(&p);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::ResourceWait, "{:#?}", c.findings);
    assert_eq!(
        first.title,
        "task kind `gateway.get` (in tasks `gateway.conn`) waits 300.0 µs more per operation \
         on the `Mutex` created at app/src/gateway.rs:120"
    );
    assert!(first.fix.contains("across an `.await`"), "{}", first.fix);
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert_eq!(waiting.len(), 1, "{:#?}", c.findings);
    assert!(waiting[0].symptom, "{:#?}", waiting[0]);
}

#[test]
fn a_resource_whose_line_moved_or_whose_waits_stayed_is_no_finding() {
    let mut p = pair(Build::default(), Build::default());
    p.base.0.console = Some(console_of(300_000, 120));
    p.cand.0.console = Some(console_of(310_000, 131));
    let c = run(&p);
    assert!(
        of_kind(&c, FindingKind::ResourceWait).is_empty(),
        "{:#?}",
        c.findings
    );
    assert!(c.findings.is_empty(), "{:#?}", c.findings);
}

#[test]
fn a_console_lint_the_baseline_did_not_have_is_a_finding_and_a_lost_waker_a_regression() {
    use crate::snapshot::{ConsoleLint, Lint};
    let lint = |lint: Lint, line: u32| ConsoleLint {
        lint,
        task: "gateway.conn".into(),
        location: format!("app/src/server.rs:{line}"),
        tasks: 3,
        value: 0.0,
    };
    let mut p = pair(Build::default(), Build::default());
    let mut base = console_of(0, 0);
    base.lints = vec![lint(Lint::LargeFuture, 100)];
    let mut cand = base.clone();
    cand.lints = vec![lint(Lint::LargeFuture, 104), lint(Lint::LostWaker, 104)];
    p.base.0.console = Some(base);
    p.cand.0.console = Some(cand);
    let c = run(&p);
    let lints = of_kind(&c, FindingKind::ConsoleLint);
    assert_eq!(
        lints.len(),
        1,
        "the large future only moved: {:#?}",
        c.findings
    );
    assert!(
        lints[0].title.contains("lost its waker"),
        "{}",
        lints[0].title
    );
    assert!(lints[0].regression && c.regression);
}

#[test]
fn a_kind_that_waits_at_new_awaits_is_waiting_and_its_extra_polls_and_executor_work_its_symptoms() {
    // 30 more polls per operation, each after a wait (idle +400 µs, no more CPU in the polls),
    // and the executor's 60 µs more CPU running the wakes: 60% of the wall time's change.
    let c = run(&pair(
        Build::default(),
        Build {
            extra_polls: 30,
            extra_idle_ns: 400_000,
            speed: 0.8,
            ..Build::default()
        },
    ));
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Waiting, "{:#?}", c.findings);
    assert!(
        first
            .title
            .contains("at 30.00 more awaits per operation that had to wait"),
        "{}",
        first.title
    );
    let polls = of_kind(&c, FindingKind::Polls);
    assert_eq!(polls.len(), 1, "{:#?}", c.findings);
    assert!(polls[0].symptom, "{:#?}", polls[0]);
    // The same polls and executor time without the waiting are the polls' own finding.
    let busy = run(&pair(
        Build::default(),
        Build {
            extra_polls: 30,
            speed: 0.8,
            ..Build::default()
        },
    ));
    assert_eq!(
        busy.findings[0].kind,
        FindingKind::Polls,
        "{:#?}",
        busy.findings
    );
    assert!(of_kind(&busy, FindingKind::Waiting).is_empty());
}

#[test]
fn a_slowdown_no_probe_names_is_measured_again_and_one_a_cause_names_is_not() {
    // Slower, with nothing but the wall time to show for it.
    let unexplained = run(&pair(
        Build::default(),
        Build {
            speed: 0.8,
            ..Build::default()
        },
    ));
    assert_eq!(
        unexplained.wall.as_ref().map(|w| w.verdict),
        Some(WallVerdict::Slower)
    );
    assert!(unexplained.wall_change_unexplained(), "{unexplained:#?}");
    // The same slowdown with a blocking call to show for it.
    let named = run(&pair(
        Build::default(),
        Build {
            fsync_ns: 100_000,
            speed: 0.8,
            ..Build::default()
        },
    ));
    assert_eq!(named.findings[0].kind, FindingKind::Blocking);
    assert!(!named.wall_change_unexplained(), "{:#?}", named.findings);
    // A hot spot names its cause by its cost, though it crosses no threshold of its own.
    let hot = run(&pair(
        Build::default(),
        Build {
            spin_ns: 3_000_000,
            speed: 0.8,
            ..Build::default()
        },
    ));
    assert_eq!(
        hot.findings[0].kind,
        FindingKind::HotSpot,
        "{:#?}",
        hot.findings
    );
    assert!(!hot.wall_change_unexplained(), "{:#?}", hot.findings);
    // No change: nothing to measure again.
    assert!(!run(&pair(Build::default(), Build::default())).wall_change_unexplained());
}

#[test]
fn a_lock_several_handlers_wait_on_names_each_that_waits_a_tenth_of_its_time() {
    use crate::snapshot::TaskWaits;
    let mut p = pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            extra_polls: 30,
            speed: 0.7,
            ..Build::default()
        },
    );
    p.base.0.console = Some(console_of(0, 0));
    let mut cand = console_of(300_000, 120);
    let lock = cand.resources.last_mut().unwrap();
    let share = |part: f64| TaskWaits {
        waits: OPS,
        wait_ns: lock.wait_ns * part,
    };
    lock.kinds = [
        ("gateway.query".to_string(), share(0.6)),
        ("gateway.get".to_string(), share(0.35)),
        ("gateway.stats".to_string(), share(0.05)),
    ]
    .into();
    p.cand.0.console = Some(cand);
    let c = run(&p);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::ResourceWait);
    assert!(
        first.title.starts_with(
            "task kinds `gateway.query`, `gateway.get` (in tasks `gateway.conn`) wait 300.0 µs"
        ),
        "{}",
        first.title
    );
    // The waiting kind's extra polls are the wakes of its waits.
    let polls = of_kind(&c, FindingKind::Polls);
    assert_eq!(polls.len(), 1, "{:#?}", c.findings);
    assert!(
        polls[0].symptom && polls[0].fix.contains("one more poll"),
        "{:#?}",
        polls[0]
    );
}

#[test]
fn new_waits_the_wall_time_cannot_tell_from_the_noise_are_shown_not_a_regression() {
    let c = run(&pair(
        Build::default(),
        Build {
            extra_polls: 30,
            extra_idle_ns: 400_000,
            ..Build::default()
        },
    ));
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert_eq!(waiting.len(), 1, "{:#?}", c.findings);
    assert!(!waiting[0].regression && !c.regression, "{:#?}", c.findings);
    assert_eq!(waiting[0].cost_ns_per_op, None);
    // Beside new polls, idle time needs only to grow by a fifth to say they followed waits.
    let waits_of = |extra_idle_ns: u64| {
        let c = run(&pair(
            Build::default(),
            Build {
                extra_polls: 30,
                extra_idle_ns,
                ..Build::default()
            },
        ));
        of_kind(&c, FindingKind::Waiting).len()
    };
    assert_eq!(waits_of(60_000), 1, "idle 200 → 260 µs per operation");
    assert_eq!(waits_of(30_000), 0, "idle 200 → 230 µs per operation");
    // Longer idle time without new awaits is the machine's or a peer's: nothing to show.
    let idle = run(&pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            ..Build::default()
        },
    ));
    assert!(
        of_kind(&idle, FindingKind::Waiting).is_empty(),
        "{:#?}",
        idle.findings
    );
}

#[test]
fn what_the_blocking_sampler_cost_is_shown_and_a_costly_one_is_noted() {
    let costed = |sampler_cpu_ns| {
        let mut s = snapshot_of(Build::default(), "side");
        let mut blocking = blocking_of(Build::default());
        blocking.cost = Some(crate::blocking::SamplerCost {
            sampler_cpu_ns,
            handler_cpu_ns: 1_000_000,
            process_cpu_ns: 1_000_000_000,
        });
        s.blocking = Some(blocking);
        s
    };
    let (base, cand) = (costed(14_000_000), costed(49_000_000));
    let c = compared(&base, &cand);
    assert_eq!(c.probe_costs.len(), 1, "{:?}", c.probe_costs);
    let (b, k) = c.probe_costs[0].share;
    assert!((b.unwrap() - 0.015).abs() < 1e-9 && (k.unwrap() - 0.05).abs() < 1e-9);
    let report = render_markdown(&c);
    assert!(
        report.contains("used 1.50% (baseline) and 5.00% (candidate) of the process's CPU"),
        "{report}"
    );
    let costly: Vec<_> = c.notes.iter().filter(|n| n.contains("took")).collect();
    assert_eq!(
        costly.len(),
        1,
        "only the candidate's is above 3%: {:?}",
        c.notes
    );
    assert!(
        costly[0].starts_with("the candidate's blocking pass"),
        "{costly:?}"
    );
    let unmeasured = compared(
        &snapshot_of(Build::default(), "b"),
        &snapshot_of(Build::default(), "c"),
    );
    assert!(
        unmeasured.probe_costs.is_empty(),
        "no probe measured itself"
    );
}

#[test]
fn the_lead_names_the_costliest_cause_of_a_slowdown_not_a_cheaper_threshold() {
    // A hot spot of 3 ms per operation beside a sync of 50 µs that crosses the blocking
    // threshold: the hot spot is the most likely cause.
    let c = run(&pair(
        Build::default(),
        Build {
            spin_ns: 3_000_000,
            fsync_ns: 50_000,
            speed: 0.6,
            ..Build::default()
        },
    ));
    assert_eq!(c.wall.as_ref().unwrap().verdict, WallVerdict::Slower);
    assert_eq!(
        c.findings[0].kind,
        FindingKind::HotSpot,
        "{:#?}",
        c.findings
    );
    assert!(
        c.findings
            .iter()
            .any(|f| f.kind == FindingKind::Blocking && f.regression),
        "the sync crosses its threshold: {:#?}",
        c.findings
    );
    let report = render_markdown(&c);
    assert!(
        report.contains("**Most likely cause:** `spin`"),
        "{}",
        report.lines().take(4).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_total_without_a_cost_or_a_place_ranks_after_a_wait_that_says_where() {
    let finding = |kind: FindingKind, cost: Option<f64>, sites: &[&str]| Finding {
        kind,
        title: format!("{kind:?}"),
        evidence: Vec::new(),
        sites: sites.iter().map(|s| s.to_string()).collect(),
        functions: Vec::new(),
        cost_ns_per_op: cost,
        share: None,
        fix: String::new(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    };
    let mut findings = vec![
        // Bytes copied grew, but no time in memcpy did: a cost of zero.
        finding(FindingKind::Copies, Some(0.0), &[]),
        finding(
            FindingKind::ResourceWait,
            None,
            &["a `Semaphore` (app/src/node.rs:20)"],
        ),
        finding(
            FindingKind::HotSpot,
            Some(30_000.0),
            &["`f` (app/src/f.rs:1)"],
        ),
    ];
    rank(&mut findings);
    let kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::HotSpot,
            FindingKind::ResourceWait,
            FindingKind::Copies
        ]
    );
}

#[test]
fn one_functions_grown_allocation_sites_are_one_finding_with_every_place() {
    // A connection made per call: its read buffer, its write buffer and its stream.
    let site = |line: u32, via: &str, bytes: u64| HeapSite {
        function: "app::conn::Conn::connect::{{closure}}".into(),
        location: Some(format!("app/src/conn.rs:{line}")),
        via: vec![via.into()],
        blocks: 3 * OPS,
        bytes: 3 * OPS * bytes,
    };
    let mut p = pair(Build::default(), Build::default());
    let cand = p.cand.0.heap.as_mut().unwrap();
    cand.sites.extend([
        site(36, "bytes::bytes_mut::BytesMut::with_capacity", 8_192),
        site(37, "alloc::raw_vec::RawVec<T>::with_capacity", 8_192),
        site(25, "tokio::net::tcp::stream::TcpStream::connect", 256),
    ]);
    p.cand.0.alloc.as_mut().unwrap().allocations += 9 * OPS;
    let c = run(&p);
    let allocations = of_kind(&c, FindingKind::Allocations);
    assert_eq!(allocations.len(), 1, "{allocations:#?}");
    let f = allocations[0];
    assert_eq!(
        f.title,
        "new allocations in `Conn::connect`: 9.00 per operation, at 3 places"
    );
    assert_eq!(f.sites.len(), 3, "{:?}", f.sites);
    assert_eq!(f.counts_per_op, Some((0.0, 9.0)));
}

#[test]
fn a_longer_tail_from_new_waits_ranks_the_wait_above_a_few_cheap_allocations() {
    // Queries resolved one record at a time: their kind waits 800 µs more per operation at
    // new awaits, the tail doubles, the throughput holds; the wave loop allocates a little more.
    let mut p = pair(
        Build::default(),
        Build {
            extra_idle_ns: 800_000,
            extra_polls: 1,
            ..Build::default()
        },
    );
    for (side, p99) in [(&mut p.base.0, 8_000), (&mut p.cand.0, 16_000)] {
        for run in &mut side.wall {
            run.latency_us.p99 = p99;
        }
    }
    let site = |blocks: u64| HeapSite {
        function: "app::query::answer_batch::{{closure}}".into(),
        location: Some("app/src/query.rs:169".into()),
        via: vec!["alloc::raw_vec::RawVec<T>::with_capacity".into()],
        blocks,
        bytes: blocks * 64,
    };
    p.base.0.heap.as_mut().unwrap().sites.push(site(OPS / 5));
    p.cand
        .0
        .heap
        .as_mut()
        .unwrap()
        .sites
        .push(site(3 * OPS / 2));
    p.cand.0.alloc.as_mut().unwrap().allocations += 13 * OPS / 10;
    let c = run(&p);
    assert_ne!(c.wall.as_ref().unwrap().verdict, WallVerdict::Slower);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Waiting, "{:#?}", c.findings);
    assert!(first.title.contains("`gateway.get`"), "{}", first.title);
    assert_eq!(
        first.share, None,
        "a wait the throughput does not show is no share of it"
    );
    assert!(
        first.cost_ns_per_op.is_some_and(|ns| ns >= 800_000.0),
        "{first:#?}"
    );
    assert!(render_markdown(&c).contains("**Most likely cause:** task kind `gateway.get` waits"));
}

#[test]
fn a_longer_wait_at_a_site_both_sides_wait_on_is_a_regression_only_with_the_wall_time() {
    // The same lock, waited on 300 µs longer per operation, the throughput and the tail flat.
    let mut p = pair(Build::default(), Build::default());
    p.base.0.console = Some(console_of(100_000, 120));
    p.cand.0.console = Some(console_of(400_000, 120));
    let c = run(&p);
    let waits = of_kind(&c, FindingKind::ResourceWait);
    assert_eq!(waits.len(), 1, "{:#?}", c.findings);
    assert!(!waits[0].regression && !c.regression, "{:#?}", waits[0]);
    // The same wait with the operations slower is one.
    p.cand.0 = snapshot_of(
        Build {
            speed: 0.7,
            ..Build::default()
        },
        "candidate",
    );
    p.cand.0.console = Some(console_of(400_000, 120));
    let c = run(&p);
    assert!(of_kind(&c, FindingKind::ResourceWait)[0].regression);
}

#[test]
fn system_calls_counted_by_two_different_counters_are_not_compared() {
    let more_sends = Build {
        speed: 0.8,
        extra_sends: 8,
        ..Build::default()
    };
    let mut p = pair(Build::default(), more_sends);
    let c = run(&p);
    assert_eq!(
        of_kind(&c, FindingKind::Syscalls).len(),
        1,
        "{:#?}",
        c.findings
    );
    let counts = p.cand.0.syscalls.as_mut().expect("the fixture's counts");
    counts.counter = crate::snapshot::COUNTER_SYSCOUNT.into();
    let c = run(&p);
    assert!(
        of_kind(&c, FindingKind::Syscalls).is_empty(),
        "{:#?}",
        c.findings
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("counted by strace (baseline) and diag-syscount (candidate)")),
        "{:#?}",
        c.notes
    );
}

#[test]
fn the_function_whose_sampled_calls_grew_is_the_site_even_where_the_cpu_saw_another() {
    let mut p = pair(
        Build::default(),
        Build {
            speed: 0.8,
            extra_sends: 8,
            ..Build::default()
        },
    );
    let site = |function: &str, per_op: u64| crate::snapshot::SyscallSite {
        call: "sendto".into(),
        function: function.into(),
        location: Some("app/src/wire.rs:232".into()),
        calls: (per_op * OPS) as f64,
        samples: per_op * OPS / 128,
    };
    for (side, sites) in [
        (
            &mut p.base.0,
            vec![site("app::server::Connection::run", 20)],
        ),
        (
            &mut p.cand.0,
            vec![
                site("app::server::Connection::run", 20),
                site("app::wire::OutFrame::write_to", 8),
            ],
        ),
    ] {
        let counts = side.syscalls.as_mut().expect("the fixture's counts");
        counts.counter = crate::snapshot::COUNTER_SYSCOUNT.into();
        counts.sites = sites;
    }
    let c = run(&p);
    let sends = of_kind(&c, FindingKind::Syscalls);
    assert_eq!(sends.len(), 1, "{:#?}", c.findings);
    let send = sends[0];
    assert!(
        send.title.ends_with("from `OutFrame::write_to`"),
        "{}",
        send.title
    );
    assert!(send.regression);
    let counted = send
        .evidence
        .iter()
        .find(|e| e.what.contains("(sampled stacks)"));
    assert!(
        counted.is_some_and(|e| e.baseline == "0.00" && e.candidate == "8.00"),
        "{:#?}",
        send.evidence
    );
    assert!(
        send.sites[0].contains("app/src/wire.rs:232"),
        "{:?}",
        send.sites
    );
    // The CPU profile saw no samples under `write_to`: the cost is a share of the system
    // calls' extra CPU, not zero.
    assert!(send.cost_ns_per_op.is_some_and(|c| c > 0.0), "{send:#?}");
}

/// Counts by `diag-syscount` on both sides, with `nagle` and `nodelay` writes to TCP sockets per
/// operation on the candidate (the baseline: none with Nagle on, 20 with `TCP_NODELAY`), and
/// the candidate's writes with Nagle on sampled from two functions.
fn with_tcp_writes(p: &mut Pair, nagle: u64, nodelay: u64) {
    use crate::snapshot::{TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};
    for (side, nagle, nodelay) in [(&mut p.base.0, 0, 20), (&mut p.cand.0, nagle, nodelay)] {
        let counts = side.syscalls.as_mut().expect("the fixture's counts");
        counts.counter = crate::snapshot::COUNTER_SYSCOUNT.into();
        for (name, per_op) in [(TCP_WRITES_NAGLE, nagle), (TCP_WRITES_NODELAY, nodelay)] {
            if per_op > 0 {
                counts.calls.insert(name.into(), per_op * OPS);
            }
        }
        // Three quarters from the server's responses, a quarter from the client's requests.
        let site = |function: &str, per_op: u64| crate::snapshot::SyscallSite {
            call: TCP_WRITES_NAGLE.into(),
            function: function.into(),
            location: Some("app/src/wire.rs:232".into()),
            calls: (per_op * OPS) as f64,
            samples: per_op * OPS / 128,
        };
        counts.sites = vec![
            site("app::wire::OutFrame::write_to", nagle * 3 / 4),
            site("app::conn::Conn::call", nagle / 4),
        ];
    }
}

#[test]
fn writes_with_nagle_on_and_operations_that_wait_make_nagle_the_cause_and_the_wait_its_symptom() {
    let waits = Build {
        extra_idle_ns: 400_000,
        speed: 0.3,
        ..Build::default()
    };
    let mut p = pair(Build::default(), waits);
    with_tcp_writes(&mut p, 20, 0);
    let c = run(&p);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Nagle, "{:#?}", c.findings);
    assert!(first.regression && !first.symptom);
    assert!(
        first.title.contains("(0.00 → 20.00)") && first.title.ends_with("`OutFrame::write_to`"),
        "{}",
        first.title
    );
    assert!(first.fix.contains("set_nodelay(true)"), "{}", first.fix);
    assert_eq!(first.sites.len(), 2, "{:?}", first.sites);
    assert!(
        first.sites[1].starts_with("`app::conn::Conn::call`")
            && first.sites[1].ends_with("0.00 → 5.00 writes per operation"),
        "{:?}",
        first.sites
    );
    assert!(first.share.is_some_and(|s| s > 0.5), "{first:#?}");
    let share = first.evidence.iter().find(|e| e.what.starts_with("share"));
    assert!(
        share.is_some_and(|e| e.baseline == "0%" && e.candidate == "100%"),
        "{:#?}",
        first.evidence
    );
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert!(
        !waiting.is_empty() && waiting.iter().all(|w| w.symptom && !w.regression),
        "{:#?}",
        c.findings
    );

    // The same writes with nothing slower: shown, no regression.
    let mut p = pair(Build::default(), Build::default());
    with_tcp_writes(&mut p, 20, 0);
    let c = run(&p);
    let nagle = of_kind(&c, FindingKind::Nagle);
    assert!(
        nagle.len() == 1 && !nagle[0].regression,
        "{:#?}",
        c.findings
    );

    // The same slowdown with the sockets as they were: the wait is not charged to Nagle.
    let mut p = pair(Build::default(), waits);
    with_tcp_writes(&mut p, 0, 20);
    let c = run(&p);
    assert!(
        of_kind(&c, FindingKind::Nagle).is_empty(),
        "{:#?}",
        c.findings
    );
    assert_eq!(
        c.findings[0].kind,
        FindingKind::Waiting,
        "{:#?}",
        c.findings
    );
}

#[test]
fn a_baseline_counted_without_tcp_writes_is_not_compared_for_nagle() {
    let mut p = pair(
        Build::default(),
        Build {
            extra_idle_ns: 400_000,
            speed: 0.3,
            ..Build::default()
        },
    );
    with_tcp_writes(&mut p, 20, 0);
    let counts = p.base.0.syscalls.as_mut().expect("the fixture's counts");
    counts.calls.retain(|name, _| !name.contains("TCP"));
    let c = run(&p);
    assert!(
        of_kind(&c, FindingKind::Nagle).is_empty(),
        "{:#?}",
        c.findings
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("Nagle's algorithm not compared")),
        "{:#?}",
        c.notes
    );
}

/// Both sides counted by `diag-syscount`; the candidate syncs `syncs` times per operation from
/// `app::log::write_and_sync`, for `sync_wall_ns` of wall time per operation.
fn with_syncs(p: &mut Pair, syncs: u64, sync_wall_ns: u64) {
    for (side, syncs, wall) in [(&mut p.base.0, 0, 0), (&mut p.cand.0, syncs, sync_wall_ns)] {
        let counts = side.syscalls.as_mut().expect("the fixture's counts");
        counts.counter = crate::snapshot::COUNTER_SYSCOUNT.into();
        counts.sites = vec![crate::snapshot::SyscallSite {
            call: "fdatasync".into(),
            function: "app::log::write_and_sync".into(),
            location: Some("app/src/log.rs:413".into()),
            calls: (syncs * OPS) as f64,
            samples: syncs * OPS / 128,
        }];
        if syncs > 0 {
            counts.calls.insert("fdatasync".into(), syncs * OPS);
            counts.wall_ns.insert("fdatasync".into(), wall * OPS);
        }
    }
}

#[test]
fn syncs_on_another_thread_that_explain_the_wait_are_the_cause_and_the_wait_its_symptom() {
    let waits = Build {
        extra_idle_ns: 400_000,
        speed: 0.7,
        ..Build::default()
    };
    let mut p = pair(Build::default(), waits);
    with_syncs(&mut p, 2, 1_500_000);
    let c = run(&p);
    let first = &c.findings[0];
    assert_eq!(first.kind, FindingKind::Syscalls, "{:#?}", c.findings);
    assert!(first.title.contains("`fdatasync`"), "{}", first.title);
    assert!(
        first.regression && first.cost_ns_per_op == Some(1_500_000.0),
        "{first:#?}"
    );
    assert!(first.fix.contains("durability"), "{}", first.fix);
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert!(
        !waiting.is_empty() && waiting.iter().all(|w| w.symptom),
        "{:#?}",
        c.findings
    );

    // Syncs that took a few microseconds do not explain a wait of hundreds: the wait stays a
    // cause of its own.
    let mut p = pair(Build::default(), waits);
    with_syncs(&mut p, 2, 4_000);
    let c = run(&p);
    let waiting = of_kind(&c, FindingKind::Waiting);
    assert!(
        !waiting.is_empty() && waiting.iter().all(|w| !w.symptom),
        "{:#?}",
        c.findings
    );
}

#[test]
fn a_sync_the_runtime_threads_blocked_on_is_charged_to_blocking_not_again_as_disk_time() {
    let blocks = Build {
        fsync_ns: 300_000,
        speed: 0.7,
        ..Build::default()
    };
    let mut p = pair(Build::default(), blocks);
    with_syncs(&mut p, 2, 300_000);
    let c = run(&p);
    assert_eq!(
        c.findings[0].kind,
        FindingKind::Blocking,
        "{:#?}",
        c.findings
    );
    let syncs = of_kind(&c, FindingKind::Syscalls);
    assert!(
        syncs
            .iter()
            .all(|f| f.cost_ns_per_op.unwrap_or(0.0) < 100_000.0),
        "{:#?}",
        c.findings
    );
}

#[test]
fn a_baseline_whose_syncs_were_not_timed_is_taken_to_sync_as_slowly() {
    let waits = Build {
        extra_idle_ns: 400_000,
        speed: 0.7,
        ..Build::default()
    };
    let mut p = pair(Build::default(), waits);
    with_syncs(&mut p, 4, 1_600_000);
    // The baseline synced 2 times per operation, by a counter that did not time them.
    let counts = p.base.0.syscalls.as_mut().expect("the fixture's counts");
    counts.calls.insert("fdatasync".into(), 2 * OPS);
    let c = run(&p);
    let syncs = of_kind(&c, FindingKind::Syscalls);
    assert_eq!(syncs.len(), 1, "{:#?}", c.findings);
    assert_eq!(syncs[0].cost_ns_per_op, Some(800_000.0), "{:#?}", syncs[0]);
}
