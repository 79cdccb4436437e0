//! Shared helpers of the DDSplit benchmarks, and the copies of `ddsplit` code written the way
//! its story features write it (a cargo feature is fixed per build, so a bench that compares
//! both ways needs one of them here).

pub mod floor;
pub mod layers;
pub mod queries;
pub mod stores;

use bytes::Bytes;

/// `len` bytes that do not compress or repeat (xorshift), the same on every run.
pub fn record(len: usize) -> Bytes {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}
