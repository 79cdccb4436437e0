//! The head of an outgoing frame: length prefix, version, kind and the small fields of the
//! payload. Most heads are a few dozen bytes (a fragment header, a key, an id), so they live in
//! an inline buffer and encoding a frame allocates nothing; a large head (a batch of query
//! answers, a list of keys, stats JSON) moves to the heap once it outgrows it.

/// Bytes a head holds without allocating: a fragment header (40) with the frame's prefix,
/// version and kind (6), with room to spare.
pub const HEAD_INLINE_BYTES: usize = 64;

#[derive(Debug)]
pub struct OutHead {
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    Inline {
        bytes: [u8; HEAD_INLINE_BYTES],
        len: usize,
    },
    Heap(Vec<u8>),
}

impl OutHead {
    /// An empty head.
    pub fn new() -> OutHead {
        OutHead {
            storage: Storage::Inline {
                bytes: [0; HEAD_INLINE_BYTES],
                len: 0,
            },
        }
    }

    /// Makes room for `additional` more bytes (on the heap if they do not fit inline).
    pub fn reserve(&mut self, additional: usize) {
        match &mut self.storage {
            Storage::Inline { len, .. } if *len + additional <= HEAD_INLINE_BYTES => {}
            Storage::Inline { bytes, len } => {
                let mut heap = Vec::with_capacity(*len + additional);
                heap.extend_from_slice(&bytes[..*len]);
                self.storage = Storage::Heap(heap);
            }
            Storage::Heap(heap) => heap.reserve(additional),
        }
    }

    /// Appends `data`.
    pub fn put_slice(&mut self, data: &[u8]) {
        if let Storage::Inline { len, .. } = &self.storage
            && *len + data.len() > HEAD_INLINE_BYTES
        {
            self.reserve(data.len().max(HEAD_INLINE_BYTES));
        }
        match &mut self.storage {
            Storage::Inline { bytes, len } => {
                bytes[*len..*len + data.len()].copy_from_slice(data);
                *len += data.len();
            }
            Storage::Heap(heap) => heap.extend_from_slice(data),
        }
    }

    pub fn put_u8(&mut self, value: u8) {
        self.put_slice(&[value]);
    }

    pub fn put_u16(&mut self, value: u16) {
        self.put_slice(&value.to_be_bytes());
    }

    pub fn put_u32(&mut self, value: u32) {
        self.put_slice(&value.to_be_bytes());
    }

    pub fn put_u64(&mut self, value: u64) {
        self.put_slice(&value.to_be_bytes());
    }

    /// Whether the head has moved to the heap.
    #[cfg(test)]
    fn is_spilled(&self) -> bool {
        matches!(self.storage, Storage::Heap(_))
    }
}

impl std::ops::Deref for OutHead {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.storage {
            Storage::Inline { bytes, len } => &bytes[..*len],
            Storage::Heap(heap) => heap,
        }
    }
}

impl std::ops::DerefMut for OutHead {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Inline { bytes, len } => &mut bytes[..*len],
            Storage::Heap(heap) => heap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_heads_stay_inline_and_large_ones_keep_every_byte() {
        let mut head = OutHead::new();
        head.put_u32(7);
        head.put_u8(1);
        head.put_slice(&[9; 40]);
        assert!(!head.is_spilled());
        assert_eq!(head.len(), 45);
        head.put_u64(u64::MAX);
        head.put_slice(&[5; 100]);
        assert!(head.is_spilled());
        let mut expected = vec![0, 0, 0, 7, 1];
        expected.extend([9; 40]);
        expected.extend([0xff; 8]);
        expected.extend([5; 100]);
        assert_eq!(&head[..], &expected[..]);
    }

    #[test]
    fn reserving_past_the_inline_room_spills_at_once() {
        let mut head = OutHead::new();
        head.put_u16(0x0102);
        head.reserve(HEAD_INLINE_BYTES);
        assert!(head.is_spilled());
        assert_eq!(&head[..], &[1, 2]);
        head[0] = 3;
        assert_eq!(&head[..], &[3, 2]);
    }
}
