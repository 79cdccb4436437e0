//! Shared helpers of the DDSplit benchmarks.

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
