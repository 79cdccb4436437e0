//! One positioned, vectored write (`pwritev`): a batch of log entries goes to the file from
//! their own buffers, heads and fragment payloads side by side, without first being copied
//! into one buffer.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

/// Most buffers one `pwritev` takes (Linux's `IOV_MAX`); longer lists go in several calls.
const IOV_MAX: usize = 1024;

/// Writes every byte of `slices`, in order, to `file` at offset `at`.
pub(super) fn write_all_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut at: u64,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let count = slices.len().min(IOV_MAX);
        let offset = libc::off_t::try_from(at)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "log offset out of range"))?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (documented), and the
        // `count` slices it points to stay borrowed, so valid, for the whole call.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast(),
                count as libc::c_int,
                offset,
            )
        };
        let written = match usize::try_from(written) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        };
        at += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn writes_every_slice_in_order_at_the_offset() {
        let file = tempfile::tempfile().expect("temp file");
        file.write_all_at(b"0123", 0).expect("prefix");
        let parts: Vec<Vec<u8>> = (0..IOV_MAX + 7).map(|i| vec![i as u8; i % 5]).collect();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_at(&file, &mut slices, 4).expect("write");
        let expected: Vec<u8> = b"0123".iter().copied().chain(parts.concat()).collect();
        let mut read = vec![0u8; expected.len()];
        file.read_exact_at(&mut read, 0).expect("read");
        assert_eq!(read, expected);
        assert_eq!(
            file.metadata().expect("metadata").len(),
            expected.len() as u64
        );
    }
}
