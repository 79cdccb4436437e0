//! This binary's build identity, embedded by `build.rs`: `ddsplit build-info` prints it and
//! `ddsplit --version` summarises it (see the `ddsplit-build-info` crate).

use std::sync::OnceLock;

pub use ddsplit_build_info::BuildInfo;

/// The identity as `build.rs` wrote it: `key: value` lines.
pub const TEXT: &str = include_str!(concat!(env!("OUT_DIR"), "/build-info.txt"));

/// The identity, parsed.
pub fn get() -> BuildInfo {
    BuildInfo::parse(TEXT).expect("build.rs writes a well-formed identity")
}

/// `ddsplit --version`'s long form: the version and the identity's summary.
pub fn long_version() -> &'static str {
    static LONG: OnceLock<String> = OnceLock::new();
    LONG.get_or_init(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), get().summary()))
}
