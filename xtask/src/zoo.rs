//! `cargo xtask zoo`: the regression zoo. Each case in `xtask/zoo/cases.json` is a small patch
//! to the tree with its true cause written down; the zoo commits each patch on top of a base
//! revision, compares base and patched revision as `cargo xtask compare` does, and scores
//! whether the true cause is finding 1 with no false finding.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, bail};
use diag::compare::{Comparison, Finding, WallVerdict};
use serde::Deserialize;

use crate::compare;
use crate::util::{git, target_dir, workspace_root};

/// Share of cases that must pass for the zoo to exit 0.
pub const ZOO_TARGET_SCORE: f64 = 0.9;

/// Operations per wall run in the zoo: the compare default, so the zoo scores what a user runs.
pub const ZOO_OPS: u64 = crate::passes::DEFAULT_OPS;

/// Where the cases live, relative to the workspace.
const CASES_FILE: &str = "xtask/zoo/cases.json";

/// Where a case's patched revision is committed (outside every target directory).
const ZOO_WORKTREES: &str = ".xtask/zoo";

const USAGE: &str = "\
cargo xtask zoo [--only NAME[,NAME...]] [--base REV] [--ops N] [--list] [--saved]

Runs the regression zoo: each case of xtask/zoo/cases.json is a patch committed on top of REV
(default HEAD), compared against REV by `cargo xtask compare` (revision mode, both sides built in
worktrees of their own). A regression case passes when its true cause is finding 1; a `named`
case (a switch of allocator) too, whichever way the wall time goes; `nothing` cases (a change
that moves lines, a comment) pass with no finding; `faster` cases pass when the verdict is
faster with no regression. Prints a table (rank of the true cause, false findings,
time) and the score, and exits 1 below 90%.

Options:
  --only NAMES   run only these cases
  --base REV     the revision every patch applies to (default HEAD)
  --ops N        operations per wall run (default 5000, as compare)
  --list         list the cases and their expected causes
  --saved        explain again the snapshots the last run saved (target/xtask/zoo/NAME/), without
                 building or running anything: for working on the engine's rules. Its wall
                 times were measured then, so it is no substitute for a fresh run
";

/// One case of the zoo.
#[derive(Debug, Clone, Deserialize)]
struct Case {
    /// Its name (also its patch's, `NAME.patch`, unless `patch` says otherwise).
    name: String,
    /// The patch's name when it is another case's (`NAME` of `NAME.patch`).
    #[serde(default)]
    patch: Option<String>,
    /// Compare the other way round: the patched revision is the baseline and the base the
    /// candidate (an improvement made of a known regression taken away).
    #[serde(default)]
    reverse: bool,
    /// What the change does, as its author would say.
    what: String,
    /// `slower`, `faster`, `nothing` or `named`.
    expect: Expect,
    /// The true cause, for `slower` and `named` cases.
    #[serde(default)]
    cause: Option<Cause>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Slower,
    Faster,
    Nothing,
    /// A change the report must name first, whichever way the wall time goes (a switch of
    /// allocator can be faster or slower for a workload).
    Named,
}

/// How to recognise the true cause among the findings.
#[derive(Debug, Clone, Deserialize)]
struct Cause {
    /// The finding kinds that name it (`blocking`, `allocations`, `type_grew`...): a clone
    /// is as truly named by its copies as by its allocations.
    kinds: Vec<String>,
    /// Text one of which the finding's title or sites must contain (a function, a type).
    any_of: Vec<String>,
}

impl Cause {
    fn matches(&self, f: &Finding) -> bool {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.kinds.contains(&kind)
            && self.any_of.iter().any(|t| {
                f.title.contains(t.as_str()) || f.sites.iter().any(|s| s.contains(t.as_str()))
            })
    }
}

/// How one case went.
struct Outcome {
    name: String,
    rank: Option<usize>,
    false_findings: usize,
    passed: bool,
    seconds: f64,
    note: String,
}

pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut only: Option<Vec<String>> = None;
    let mut base = "HEAD".to_string();
    let mut ops = ZOO_OPS;
    let mut list = false;
    let mut saved = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--only" => only = Some(value("--only")?.split(',').map(str::to_string).collect()),
            "--base" => base = value("--base")?,
            "--ops" => ops = crate::profile::number(&value("--ops")?, "--ops")?,
            "--list" => list = true,
            "--saved" => saved = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let cases = load_cases(&root, only.as_deref())?;
    if list {
        for c in &cases {
            println!(
                "{:<28} {:<8} {}",
                c.name,
                format!("{:?}", c.expect).to_lowercase(),
                c.what
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let base = git(
        &root,
        &["rev-parse", "--verify", &format!("{base}^{{commit}}")],
    )
    .with_context(|| format!("{base} is not a revision of this repository"))?;
    let mut outcomes = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        eprintln!(
            "zoo {}/{}: {} ({})",
            i + 1,
            cases.len(),
            case.name,
            case.what
        );
        outcomes.push(if saved {
            rescore_case(&root, case)
        } else {
            run_case(&root, &base, case, ops)
        });
    }
    print!("{}", table(&outcomes));
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let score = passed as f64 / outcomes.len().max(1) as f64;
    println!(
        "\nscore: {passed} of {} cases ({:.0}%), target {:.0}%",
        outcomes.len(),
        score * 100.0,
        ZOO_TARGET_SCORE * 100.0
    );
    Ok(if score >= ZOO_TARGET_SCORE {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load_cases(root: &Path, only: Option<&[String]>) -> anyhow::Result<Vec<Case>> {
    let path = root.join(CASES_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let cases: Vec<Case> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of cases", path.display()))?;
    for case in &cases {
        if matches!(case.expect, Expect::Slower | Expect::Named) && case.cause.is_none() {
            bail!(
                "case {}: a `slower` or `named` case needs its `cause`",
                case.name
            );
        }
    }
    let Some(only) = only else { return Ok(cases) };
    let unknown: Vec<&String> = only
        .iter()
        .filter(|n| !cases.iter().any(|c| &c.name == *n))
        .collect();
    if !unknown.is_empty() {
        bail!("no case named {unknown:?}; `cargo xtask zoo --list` lists them");
    }
    Ok(cases
        .into_iter()
        .filter(|c| only.contains(&c.name))
        .collect())
}

fn run_case(root: &Path, base: &str, case: &Case, ops: u64) -> Outcome {
    let started = Instant::now();
    let result = patched_revision(root, base, case).and_then(|patched| {
        let out = target_dir(root).join("xtask").join("zoo").join(&case.name);
        let (baseline, candidate) = if case.reverse {
            (patched.as_str(), base)
        } else {
            (base, patched.as_str())
        };
        let args: Vec<String> = [
            "--baseline",
            baseline,
            "--candidate",
            candidate,
            "--out",
            &out.display().to_string(),
            "--ops",
            &ops.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let options = compare::parse(&args)?.context("compare options")?;
        let (comparison, report) = compare::run_comparison(&options)?;
        eprintln!("  report: {}", report.display());
        Ok(comparison)
    });
    outcome(case, result, started)
}

/// The case explained again from the snapshots its last run saved.
fn rescore_case(root: &Path, case: &Case) -> Outcome {
    let started = Instant::now();
    let dir = target_dir(root).join("xtask").join("zoo").join(&case.name);
    let result = (|| {
        for side in ["baseline", "candidate"] {
            if !dir.join(side).join("snapshot.json").is_file() {
                bail!("no saved {side} in {}: run the case first", dir.display());
            }
        }
        let args: Vec<String> = [
            "--baseline".to_string(),
            dir.join("baseline").display().to_string(),
            "--candidate".to_string(),
            dir.join("candidate").display().to_string(),
            "--out".to_string(),
            dir.join("saved").display().to_string(),
        ]
        .to_vec();
        let options = compare::parse(&args)?.context("compare options")?;
        Ok(compare::run_comparison(&options)?.0)
    })();
    outcome(case, result, started)
}

/// How a case went: its score, or why it could not be compared.
fn outcome(case: &Case, result: anyhow::Result<Comparison>, started: Instant) -> Outcome {
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(c) => score(case, &c, seconds),
        Err(e) => Outcome {
            name: case.name.clone(),
            rank: None,
            false_findings: 0,
            passed: false,
            seconds,
            note: format!("could not compare: {e:#}"),
        },
    }
}

/// Whether the comparison found what the case says, and how many findings were false.
fn score(case: &Case, c: &Comparison, seconds: f64) -> Outcome {
    let cause = case.cause.as_ref();
    let is_true = |f: &Finding| cause.is_some_and(|cause| cause.matches(f));
    let rank = c.findings.iter().position(is_true).map(|i| i + 1);
    let false_findings = c
        .findings
        .iter()
        .filter(|f| !is_true(f) && f.regression)
        .count();
    let faster = c
        .wall
        .as_ref()
        .is_some_and(|w| w.verdict == WallVerdict::Faster);
    let (passed, note) = match case.expect {
        Expect::Slower | Expect::Named => (
            rank == Some(1),
            c.findings
                .first()
                .map_or("no finding".into(), |f| format!("1: {}", f.title)),
        ),
        Expect::Nothing => (
            c.findings.is_empty() && !c.regression,
            c.findings
                .first()
                .map_or(String::new(), |f| format!("1: {}", f.title)),
        ),
        Expect::Faster => (faster && !c.regression, verdict_note(c)),
    };
    Outcome {
        name: case.name.clone(),
        rank,
        false_findings,
        passed,
        seconds,
        note,
    }
}

fn verdict_note(c: &Comparison) -> String {
    match &c.wall {
        Some(w) => format!("throughput {:+.1}% ({:?})", w.change() * 100.0, w.verdict),
        None => "no wall comparison".into(),
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "\n| case | passed | rank of the true cause | false findings | time | finding 1 or verdict |\n\
         |---|---|---:|---:|---:|---|\n",
    );
    for o in outcomes {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} s | {} |\n",
            o.name,
            if o.passed { "yes" } else { "**no**" },
            o.rank.map_or("–".into(), |r| r.to_string()),
            o.false_findings,
            o.seconds,
            o.note.replace('|', "\\|")
        ));
    }
    out
}

/// The case's patch committed on top of `base`, with a fixed author and date so that the same
/// patch on the same base is the same commit (and its build is reused).
fn patched_revision(root: &Path, base: &str, case: &Case) -> anyhow::Result<String> {
    let name = case.patch.as_deref().unwrap_or(&case.name);
    let patch = root.join("xtask/zoo").join(format!("{name}.patch"));
    if !patch.is_file() {
        bail!("case {}: no patch {}", case.name, patch.display());
    }
    let dir: PathBuf = root.join(ZOO_WORKTREES).join(name);
    if dir.exists() {
        let _ = Command::new("git")
            .current_dir(root)
            .args(["worktree", "remove", "--force"])
            .arg(&dir)
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = git(root, &["worktree", "prune"]);
    git(
        root,
        &[
            "worktree",
            "add",
            "--quiet",
            "--detach",
            &dir.display().to_string(),
            base,
        ],
    )
    .with_context(|| format!("cannot check out {base} in {}", dir.display()))?;
    let applied = git(&dir, &["apply", &patch.display().to_string()]);
    let committed = applied.and_then(|_| {
        let status = Command::new("git")
            .current_dir(&dir)
            .args([
                "-c",
                "user.name=xtask zoo",
                "-c",
                "user.email=zoo@ddsplit.invalid",
            ])
            .args(["commit", "--quiet", "--all", "--message"])
            .arg(format!("zoo: {name}"))
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .status()
            .ok()?;
        status
            .success()
            .then(|| git(&dir, &["rev-parse", "HEAD"]))
            .flatten()
    });
    let _ = Command::new("git")
        .current_dir(root)
        .args(["worktree", "remove", "--force"])
        .arg(&dir)
        .status();
    let revision = committed.with_context(|| {
        format!(
            "case {}: {} does not apply to {base} (or could not be committed)",
            case.name,
            patch.display()
        )
    })?;
    // A ref keeps the commit from garbage collection while its build is cached.
    git(
        root,
        &[
            "update-ref",
            &format!("refs/xtask-zoo/{}", case.name),
            &revision,
        ],
    )
    .context("cannot keep the case's commit under refs/xtask-zoo")?;
    Ok(revision)
}
