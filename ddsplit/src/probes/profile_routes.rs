//! `/debug/pprof/profile` (a CPU profile of the next N seconds, as pprof, folded stacks or a
//! flamegraph, by thread or by task kind) and `/debug/pprof/heap` (dhat's heap profile, in the
//! heap-profile build).

use std::time::Duration;

use diag::cpu::{CpuError, CpuProfiler, HZ_MAX};
use futures::future::BoxFuture;

use super::{CPU_IN_HEAP_MODE, HEAP_PROFILE_MODE, task_view};
use crate::admin::{AdminRoute, HttpResponse};
use crate::limits::{PROFILE_SECONDS_DEFAULT, PROFILE_SECONDS_MAX};

/// What a profile request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProfileQuery {
    seconds: u64,
    hz: u32,
    format: ProfileFormat,
    tasks: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileFormat {
    Pprof,
    Svg,
    Folded,
}

fn parse_profile_query(query: &str) -> Result<ProfileQuery, String> {
    let mut parsed = ProfileQuery {
        seconds: PROFILE_SECONDS_DEFAULT,
        hz: diag::cpu::DEFAULT_HZ,
        format: ProfileFormat::Pprof,
        tasks: false,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "seconds" => {
                parsed.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=PROFILE_SECONDS_MAX).contains(s))
                    .ok_or_else(|| {
                        format!("seconds={value:?}: a whole number of seconds, 1 to {PROFILE_SECONDS_MAX}")
                    })?;
            }
            "hz" => {
                parsed.hz = value
                    .parse()
                    .ok()
                    .filter(|hz| (1..=HZ_MAX).contains(hz))
                    .ok_or_else(|| format!("hz={value:?}: a sampling frequency, 1 to {HZ_MAX}"))?;
            }
            "format" => {
                parsed.format = match value {
                    "pprof" | "proto" => ProfileFormat::Pprof,
                    "svg" => ProfileFormat::Svg,
                    "folded" => ProfileFormat::Folded,
                    other => {
                        return Err(format!(
                            "format={other:?}: pprof (gzip'd protobuf, the default), svg (a flamegraph) or folded (folded stacks)"
                        ));
                    }
                }
            }
            "view" => {
                parsed.tasks = match value {
                    "threads" => false,
                    "tasks" => true,
                    other => {
                        return Err(format!(
                            "view={other:?}: threads (stacks rooted at threads, the default) or tasks (rooted at task kinds, runtime frames collapsed)"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; the parameters are seconds, hz, format and view"
                ));
            }
        }
    }
    Ok(parsed)
}

/// `/debug/pprof/profile?seconds=N`: a CPU profile of the whole process, as Go's endpoint serves
/// it (gzip'd pprof protobuf), or a flamegraph (`&format=svg`), or folded stacks.
#[derive(Debug)]
pub(super) struct CpuProfileRoute;

impl AdminRoute for CpuProfileRoute {
    fn path(&self) -> &'static str {
        "/debug/pprof/profile"
    }

    fn describe(&self) -> &'static str {
        "CPU profile: ?seconds=N (default 30, at most 120) [&hz=99] [&format=pprof|svg|folded] [&view=threads|tasks]"
    }

    fn get(&self, query: &str) -> BoxFuture<'static, HttpResponse> {
        let parsed = parse_profile_query(query);
        Box::pin(async move {
            let query = match parsed {
                Ok(query) => query,
                Err(e) => return HttpResponse::error(400, e),
            };
            if HEAP_PROFILE_MODE {
                return HttpResponse::error(409, CPU_IN_HEAP_MODE);
            }
            let profiler = match CpuProfiler::start(query.hz) {
                Ok(profiler) => profiler,
                Err(e @ CpuError::Busy) => return HttpResponse::error(409, e.to_string()),
                Err(e) => return HttpResponse::error(500, e.to_string()),
            };
            tokio::time::sleep(Duration::from_secs(query.seconds)).await;
            // Symbolizing reads debug info: not on a runtime thread.
            let rendered = tokio::task::spawn_blocking(move || render_profile(profiler, query))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            rendered.unwrap_or_else(|e| HttpResponse::error(500, e))
        })
    }
}

fn render_profile(profiler: CpuProfiler, query: ProfileQuery) -> Result<HttpResponse, String> {
    let profile = profiler.stop().map_err(|e| e.to_string())?;
    let folded = || {
        if query.tasks {
            profile.tasks_folded(&task_view())
        } else {
            profile.folded()
        }
    };
    Ok(match query.format {
        ProfileFormat::Pprof => {
            let mut response = HttpResponse::text(
                diag::cpu::PPROF_CONTENT_TYPE,
                profile.pprof_gzip().map_err(|e| e.to_string())?,
            );
            response.headers.push((
                "Content-Disposition",
                "attachment; filename=\"profile\"".to_string(),
            ));
            response
        }
        ProfileFormat::Svg => HttpResponse::text(
            "image/svg+xml",
            profile
                .flamegraph_svg("ddsplit CPU", &folded())
                .map_err(|e| e.to_string())?,
        ),
        ProfileFormat::Folded => HttpResponse::text("text/plain; charset=utf-8", folded()),
    })
}

/// `/debug/pprof/heap`: the dhat heap profile recorded so far (heap-profile build only).
#[derive(Debug)]
pub(super) struct HeapProfileRoute;

impl AdminRoute for HeapProfileRoute {
    fn path(&self) -> &'static str {
        "/debug/pprof/heap"
    }

    fn describe(&self) -> &'static str {
        "dhat heap profile so far (JSON for dh_view.html; recording restarts), in the dhat-heap build"
    }

    fn get(&self, query: &str) -> BoxFuture<'static, HttpResponse> {
        let refused = (!query.is_empty()).then(|| {
            HttpResponse::error(400, format!("{query:?}: this route takes no parameters"))
        });
        Box::pin(async move {
            if let Some(refused) = refused {
                return refused;
            }
            heap_profile_response().await
        })
    }
}

#[cfg(feature = "dhat-heap")]
async fn heap_profile_response() -> HttpResponse {
    match tokio::task::spawn_blocking(diag::heap::take_json).await {
        Ok(Ok(json)) => HttpResponse::text("application/json", json),
        Ok(Err(e)) => HttpResponse::error(503, e.to_string()),
        Err(e) => HttpResponse::error(500, e.to_string()),
    }
}

#[cfg(not(feature = "dhat-heap"))]
async fn heap_profile_response() -> HttpResponse {
    HttpResponse::error(
        404,
        "no heap profile: this build does not record one. Heap profiles need the heap-profile \
         build, `cargo build --profile profiling -p ddsplit --features dhat-heap` (every \
         allocation is then recorded with its stack, several times slower); this route then \
         serves the dhat profile, and the run writes dhat-heap.json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_queries_parse_with_defaults_and_limits() {
        let q = parse_profile_query("").unwrap();
        assert_eq!(q.seconds, PROFILE_SECONDS_DEFAULT);
        assert_eq!(q.hz, diag::cpu::DEFAULT_HZ);
        assert_eq!(q.format, ProfileFormat::Pprof);
        let q = parse_profile_query("seconds=5&format=svg&view=tasks&hz=500").unwrap();
        assert_eq!(
            q,
            ProfileQuery {
                seconds: 5,
                hz: 500,
                format: ProfileFormat::Svg,
                tasks: true
            }
        );
        for bad in [
            "seconds=0",
            "seconds=121",
            "seconds=abc",
            "hz=0",
            "hz=1001",
            "format=png",
            "view=x",
            "debug=1",
        ] {
            let e = parse_profile_query(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(
            parse_profile_query("seconds=121")
                .unwrap_err()
                .contains("1 to 120")
        );
    }
}
