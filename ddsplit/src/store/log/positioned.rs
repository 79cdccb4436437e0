//! Positioned I/O that the standard library does not offer on stable Rust: a vectored write
//! (`pwritev`), so a batch of log entries goes to the file from their own buffers without first
//! being copied into one, and a read into a buffer's spare capacity (`pread`), so a fragment's
//! buffer is not zeroed before the read overwrites it.

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
        let offset = file_offset(at)?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (documented), and the
        // `count` slices it points to stay borrowed, so valid, for the whole call.
        let returned = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast(),
                count as libc::c_int,
                offset,
            )
        };
        let written = match byte_count(returned, io::ErrorKind::WriteZero) {
            Some(n) => n?,
            None => continue,
        };
        at += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Appends `len` bytes read at offset `at` to `buf`, into its spare capacity (reserved here
/// if the caller did not), never zeroed first; the end of the file before then is an
/// `UnexpectedEof` error.
pub(super) fn read_exact_at(
    file: &File,
    buf: &mut Vec<u8>,
    len: usize,
    mut at: u64,
) -> io::Result<()> {
    buf.reserve(len);
    let end = buf.len() + len;
    while buf.len() < end {
        let wanted = end - buf.len();
        let spare = &mut buf.spare_capacity_mut()[..wanted];
        let offset = file_offset(at)?;
        // SAFETY: the kernel writes at most `spare.len()` bytes into the spare capacity, which
        // `buf` owns and nothing else borrows during the call.
        let returned = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                offset,
            )
        };
        let read = match byte_count(returned, io::ErrorKind::UnexpectedEof) {
            Some(n) => n?,
            None => continue,
        };
        // SAFETY: the kernel initialized the first `read` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + read) };
        at += read as u64;
    }
    Ok(())
}

/// `at` as a file offset for the system call.
fn file_offset(at: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(at)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "log offset out of range"))
}

/// The bytes a system call moved, from what it `returned`: `None` when a signal interrupted it
/// (call again), `at_zero` when it moved none (the file ended, or took nothing).
fn byte_count(returned: isize, at_zero: io::ErrorKind) -> Option<io::Result<usize>> {
    match usize::try_from(returned) {
        Ok(0) => Some(Err(at_zero.into())),
        Ok(n) => Some(Ok(n)),
        Err(_) => {
            let e = io::Error::last_os_error();
            (e.kind() != io::ErrorKind::Interrupted).then_some(Err(e))
        }
    }
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

    #[test]
    fn reads_exactly_len_bytes_and_a_short_file_is_an_error() {
        let file = tempfile::tempfile().expect("temp file");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&data, 0).expect("data");
        let mut read = b"kept".to_vec();
        read_exact_at(&file, &mut read, 70_000, 1_000).expect("read");
        assert_eq!(read[..4], *b"kept");
        assert_eq!(read[4..], data[1_000..71_000]);
        let past = read_exact_at(&file, &mut Vec::new(), 10, 99_995).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
