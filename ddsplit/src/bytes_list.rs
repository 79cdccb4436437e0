//! A byte string held in one or more buffers, in order, never joined unless asked: a record
//! reassembled from its data fragments is their payloads side by side, and the gateway writes
//! them to the client as they are (a 1 MiB record is not copied into a new buffer first).

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Bytes in one buffer or several. One buffer needs no allocation of its own.
#[derive(Clone, Default)]
pub struct BytesList {
    parts: Parts,
    /// Bytes of the string: the buffers' bytes up to here (the rest, padding, is not part of
    /// it). Cutting a `Bytes` that came from a `Vec` short allocates; this does not.
    len: usize,
}

#[derive(Clone)]
enum Parts {
    One(Bytes),
    /// Non-empty buffers only, so every part holds at least one byte of the string.
    Many(Vec<Bytes>),
}

impl Default for Parts {
    fn default() -> Parts {
        Parts::One(Bytes::new())
    }
}

impl BytesList {
    /// The concatenation of `parts` (empty ones are left out).
    pub fn from_parts(parts: Vec<Bytes>) -> BytesList {
        let len = parts.iter().map(Bytes::len).sum();
        BytesList::from_parts_cut(parts, len)
    }

    /// The first `len` bytes of the concatenation of `parts` (at most all of them).
    pub fn from_parts_cut(mut parts: Vec<Bytes>, len: usize) -> BytesList {
        parts.retain(|p| !p.is_empty());
        let len = len.min(parts.iter().map(Bytes::len).sum());
        let parts = if parts.len() <= 1 {
            Parts::One(parts.pop().unwrap_or_default())
        } else {
            Parts::Many(parts)
        };
        BytesList { parts, len }
    }

    /// The bytes of the string, buffer by buffer, in order (no empty slice).
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let mut left = self.len;
        self.buffers()
            .iter()
            .map(move |b| {
                let take = b.len().min(left);
                left -= take;
                &b[..take]
            })
            .filter(|piece| !piece.is_empty())
    }

    /// Total length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `range` of the string: shared, not copied, when they lie in one buffer.
    ///
    /// # Panics
    /// When the range is out of bounds, like slicing a `Bytes`.
    pub fn slice(&self, range: Range<usize>) -> Bytes {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} out of bounds of {} bytes",
            self.len
        );
        let mut start = 0;
        for part in self.buffers() {
            let end = start + part.len();
            if range.start >= start && range.end <= end {
                return part.slice(range.start - start..range.end - start);
            }
            start = end;
        }
        self.copy_range(range)
    }

    /// The string in one buffer: copied only when it is held in several (or cut short).
    pub fn into_bytes(self) -> Bytes {
        match self.parts {
            Parts::One(mut bytes) => {
                bytes.truncate(self.len);
                bytes
            }
            Parts::Many(_) => self.copy_range(0..self.len),
        }
    }

    fn buffers(&self) -> &[Bytes] {
        match &self.parts {
            Parts::One(bytes) => std::slice::from_ref(bytes),
            Parts::Many(parts) => parts,
        }
    }

    fn copy_range(&self, range: Range<usize>) -> Bytes {
        let mut out = BytesMut::with_capacity(range.len());
        let mut start = 0;
        for piece in self.pieces() {
            let end = start + piece.len();
            let (from, to) = (range.start.max(start), range.end.min(end));
            if from < to {
                out.extend_from_slice(&piece[from - start..to - start]);
            }
            start = end;
        }
        out.freeze()
    }
}

impl From<Bytes> for BytesList {
    fn from(bytes: Bytes) -> BytesList {
        BytesList {
            len: bytes.len(),
            parts: Parts::One(bytes),
        }
    }
}

impl PartialEq for BytesList {
    /// Equal when the strings are, however they are split into buffers.
    fn eq(&self, other: &BytesList) -> bool {
        let bytes = |list: &BytesList| -> Vec<u8> { list.pieces().collect::<Vec<_>>().concat() };
        self.len == other.len && bytes(self) == bytes(other)
    }
}

impl Eq for BytesList {}

impl std::fmt::Debug for BytesList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesList")
            .field("len", &self.len)
            .field("parts", &self.pieces().count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> BytesList {
        BytesList::from_parts(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"fghi"),
        ])
    }

    #[test]
    fn a_slice_inside_one_buffer_shares_it() {
        let list = list();
        let slice = list.slice(3..5);
        assert_eq!(&slice[..], b"de");
        assert_eq!(slice.as_ptr(), list.buffers()[1].as_ptr());
    }

    #[test]
    fn a_slice_across_buffers_is_copied_in_order() {
        assert_eq!(&list().slice(1..7)[..], b"bcdefg");
        assert_eq!(&list().slice(0..9)[..], b"abcdefghi");
        assert!(list().slice(4..4).is_empty());
    }

    #[test]
    fn into_bytes_joins_several_buffers_and_keeps_one() {
        assert_eq!(&list().into_bytes()[..], b"abcdefghi");
        let one = Bytes::from_static(b"xyz");
        let joined = BytesList::from(one.clone()).into_bytes();
        assert_eq!(joined.as_ptr(), one.as_ptr());
    }

    #[test]
    fn equality_ignores_how_the_bytes_are_split() {
        assert_eq!(list(), BytesList::from(Bytes::from_static(b"abcdefghi")));
        assert_ne!(list(), BytesList::from(Bytes::from_static(b"abcdefghj")));
        assert_eq!(list().pieces().count(), 3, "the empty part is left out");
    }

    #[test]
    fn a_cut_list_ends_at_its_length_in_every_view() {
        let parts = list().buffers().to_vec();
        let cut = BytesList::from_parts_cut(parts, 7);
        assert_eq!(cut.len(), 7);
        assert_eq!(
            cut.pieces().collect::<Vec<_>>(),
            [&b"abc"[..], b"de", b"fg"]
        );
        assert_eq!(&cut.slice(4..7)[..], b"efg");
        assert_eq!(&cut.clone().into_bytes()[..], b"abcdefg");
        assert_eq!(cut, BytesList::from(Bytes::from_static(b"abcdefg")));
        let past = BytesList::from_parts_cut(vec![Bytes::from_static(b"ab")], 9);
        assert_eq!(past.len(), 2, "a cut past the end keeps every byte");
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_slice_past_the_end_panics() {
        let _ = list().slice(5..10);
    }
}
