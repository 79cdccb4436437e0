//! Splits a record into k data and m parity fragments (Reed-Solomon) and reassembles it from any
//! k of them. Every fragment carries a header with a checksum, so a damaged fragment is found
//! and never used as data.

use std::cell::RefCell;

use bytes::{Buf, Bytes, BytesMut};
use reed_solomon_simd::ReedSolomonEncoder;

use crate::bytes_list::BytesList;
use crate::id::RecordId;
use crate::limits::{
    FRAGMENT_COUNT_MAX, FRAGMENT_HEADER_LEN, FRAGMENT_PAYLOAD_MAX, RECORD_SIZE_MAX,
};

/// Marks the start of a fragment header ("DDSF").
const FRAGMENT_MAGIC: [u8; 4] = *b"DDSF";
/// Version of the fragment header layout.
const FRAGMENT_VERSION: u8 = 1;

/// How a record is split: k data fragments and m parity fragments, k + m at most
/// [`FRAGMENT_COUNT_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecParams {
    k: u8,
    m: u8,
}

impl CodecParams {
    /// Checked parameters: k ≥ 1, m ≥ 1 (the codec needs at least one parity fragment) and
    /// k + m ≤ [`FRAGMENT_COUNT_MAX`].
    pub fn new(k: u8, m: u8) -> Result<CodecParams, CodecError> {
        if k == 0 || m == 0 || k as usize + m as usize > FRAGMENT_COUNT_MAX {
            return Err(CodecError::BadParams { k, m });
        }
        Ok(CodecParams { k, m })
    }

    /// Number of data fragments.
    pub fn k(self) -> u8 {
        self.k
    }

    /// Number of parity fragments.
    pub fn m(self) -> u8 {
        self.m
    }

    /// k + m.
    pub fn total(self) -> usize {
        self.k as usize + self.m as usize
    }

    /// Payload bytes of each fragment of a record of `record_len` bytes: the record divided by k,
    /// rounded up to an even number as the Reed-Solomon engine requires.
    pub fn shard_len(self, record_len: usize) -> usize {
        let per_shard = record_len.div_ceil(self.k as usize).max(1);
        per_shard + per_shard % 2
    }
}

impl Default for CodecParams {
    fn default() -> CodecParams {
        CodecParams {
            k: crate::limits::DATA_FRAGMENTS_DEFAULT,
            m: crate::limits::PARITY_FRAGMENTS_DEFAULT,
        }
    }
}

/// What went wrong splitting, reading or reassembling fragments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error(
        "k={k} m={m} is not a valid split: need k >= 1, m >= 1 and k + m <= {FRAGMENT_COUNT_MAX}"
    )]
    BadParams { k: u8, m: u8 },
    #[error("a record must be 1 to {RECORD_SIZE_MAX} bytes, this one is {len}")]
    BadRecordLen { len: usize },
    #[error("fragment is {len} bytes, shorter than its {FRAGMENT_HEADER_LEN}-byte header")]
    Truncated { len: usize },
    #[error("fragment header is malformed: {0}")]
    BadHeader(&'static str),
    #[error(
        "fragment {index} of record {id} fails its checksum (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        id: RecordId,
        index: u8,
        stored: u32,
        computed: u32,
    },
    #[error("need {needed} fragments to reassemble, have {have}")]
    TooFewFragments { needed: usize, have: usize },
    #[error("fragments disagree: {0}")]
    Inconsistent(&'static str),
    #[error("Reed-Solomon engine failed: {0}")]
    Engine(String),
}

/// The header in front of every fragment's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The record this fragment belongs to.
    pub record_id: RecordId,
    /// Position: 0..k are data fragments, k..k+m parity fragments.
    pub index: u8,
    /// Data fragments of the record.
    pub k: u8,
    /// Parity fragments of the record.
    pub m: u8,
    /// Length of the whole record in bytes.
    pub record_len: u64,
    /// Length of this fragment's payload in bytes.
    pub payload_len: u32,
    /// CRC-32C of the header's other fields and the payload.
    pub checksum: u32,
}

impl FragmentHeader {
    /// The header as its [`FRAGMENT_HEADER_LEN`] wire bytes.
    pub fn to_bytes(&self) -> [u8; FRAGMENT_HEADER_LEN] {
        let mut out = [0u8; FRAGMENT_HEADER_LEN];
        out[0..4].copy_from_slice(&FRAGMENT_MAGIC);
        out[4] = FRAGMENT_VERSION;
        out[5] = self.index;
        out[6] = self.k;
        out[7] = self.m;
        out[8..24].copy_from_slice(&self.record_id.to_bytes());
        out[24..32].copy_from_slice(&self.record_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.payload_len.to_le_bytes());
        out[36..40].copy_from_slice(&self.checksum.to_le_bytes());
        out
    }

    /// Parses and checks the fields of a header (not yet the checksum, which needs the payload).
    pub fn parse(bytes: &[u8]) -> Result<FragmentHeader, CodecError> {
        if bytes.len() < FRAGMENT_HEADER_LEN {
            return Err(CodecError::Truncated { len: bytes.len() });
        }
        if bytes[0..4] != FRAGMENT_MAGIC {
            return Err(CodecError::BadHeader("wrong magic bytes"));
        }
        if bytes[4] != FRAGMENT_VERSION {
            return Err(CodecError::BadHeader("unknown header version"));
        }
        let header = FragmentHeader {
            index: bytes[5],
            k: bytes[6],
            m: bytes[7],
            record_id: RecordId::from_bytes(bytes[8..24].try_into().expect("16-byte slice")),
            record_len: u64::from_le_bytes(bytes[24..32].try_into().expect("8-byte slice")),
            payload_len: u32::from_le_bytes(bytes[32..36].try_into().expect("4-byte slice")),
            checksum: u32::from_le_bytes(bytes[36..40].try_into().expect("4-byte slice")),
        };
        let params = CodecParams::new(header.k, header.m)
            .map_err(|_| CodecError::BadHeader("k and m out of range"))?;
        if header.index as usize >= params.total() {
            return Err(CodecError::BadHeader("index not below k + m"));
        }
        if header.record_len == 0 || header.record_len > RECORD_SIZE_MAX as u64 {
            return Err(CodecError::BadHeader("record length out of range"));
        }
        if header.payload_len as usize != params.shard_len(header.record_len as usize) {
            return Err(CodecError::BadHeader(
                "payload length does not match record length and k",
            ));
        }
        Ok(header)
    }

    fn compute_checksum(&self, payload: &[u8]) -> u32 {
        let mut unsummed = *self;
        unsummed.checksum = 0;
        let header = unsummed.to_bytes();
        let crc = crc32c::crc32c(&header[..FRAGMENT_HEADER_LEN - 4]);
        crc32c::crc32c_append(crc, payload)
    }
}

/// A fragment whose checksum has been verified (or which was just made by [`split`]):
/// holding one means its bytes are what the writer stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    header: FragmentHeader,
    payload: Bytes,
}

impl Fragment {
    /// Parses a fragment (header then payload) and verifies its checksum.
    pub fn decode(bytes: Bytes) -> Result<Fragment, CodecError> {
        let header = Fragment::verify(&bytes)?;
        Ok(Fragment::verified(header, bytes))
    }

    /// Checks an encoded fragment (header then payload) in place and returns its header: the
    /// lengths agree and the checksum matches. With [`Fragment::verified`], a caller keeps the
    /// bytes for an error report without copying or sharing them first.
    pub fn verify(bytes: &[u8]) -> Result<FragmentHeader, CodecError> {
        let header = FragmentHeader::parse(bytes)?;
        let payload = &bytes[FRAGMENT_HEADER_LEN..];
        if payload.len() != header.payload_len as usize {
            return Err(CodecError::BadHeader(
                "payload length differs from the header's",
            ));
        }
        let computed = header.compute_checksum(payload);
        if computed != header.checksum {
            return Err(CodecError::Checksum {
                id: header.record_id,
                index: header.index,
                stored: header.checksum,
                computed,
            });
        }
        Ok(header)
    }

    /// The fragment of `bytes` whose `header` [`Fragment::verify`] returned.
    pub fn verified(header: FragmentHeader, mut bytes: Bytes) -> Fragment {
        // Advancing past the header moves a pointer; splitting would share the buffer, and
        // sharing a buffer that came from a `Vec` allocates its reference count.
        bytes.advance(FRAGMENT_HEADER_LEN);
        Fragment {
            header,
            payload: bytes,
        }
    }

    /// The header and the payload, taken apart.
    pub fn into_parts(self) -> (FragmentHeader, Bytes) {
        (self.header, self.payload)
    }

    /// The fragment's header.
    pub fn header(&self) -> &FragmentHeader {
        &self.header
    }

    /// The fragment's payload (a shard of the record or of its parity).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Bytes of the encoded fragment: header plus payload.
    pub fn encoded_len(&self) -> usize {
        FRAGMENT_HEADER_LEN + self.payload.len()
    }

    /// The encoded fragment in one buffer (copies the payload; the wire writes the header and
    /// payload separately instead).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
        out.freeze()
    }

    fn new(header: FragmentHeader, payload: Bytes) -> Fragment {
        let mut header = header;
        header.checksum = header.compute_checksum(&payload);
        Fragment { header, payload }
    }
}

/// Splits `record` into `params.k()` data and `params.m()` parity fragments, in index order.
///
/// Data fragments share the record's buffer where they can (no copy); only the last data shard,
/// padded with zeros, is copied.
pub fn split(
    id: RecordId,
    record: &Bytes,
    params: CodecParams,
) -> Result<Vec<Fragment>, CodecError> {
    if record.is_empty() || record.len() > RECORD_SIZE_MAX {
        return Err(CodecError::BadRecordLen { len: record.len() });
    }
    let k = params.k as usize;
    let shard_len = params.shard_len(record.len());
    debug_assert!(shard_len <= FRAGMENT_PAYLOAD_MAX);
    let shards: Vec<Bytes> = (0..k)
        .map(|i| {
            let start = (i * shard_len).min(record.len());
            let end = ((i + 1) * shard_len).min(record.len());
            if end - start == shard_len {
                record.slice(start..end)
            } else {
                let mut padded = BytesMut::zeroed(shard_len);
                padded[..end - start].copy_from_slice(&record[start..end]);
                padded.freeze()
            }
        })
        .collect();
    let parity = encode_parity(k, params.m as usize, &shards)?;
    let header = |index: usize| FragmentHeader {
        record_id: id,
        index: index as u8,
        k: params.k,
        m: params.m,
        record_len: record.len() as u64,
        payload_len: shard_len as u32,
        checksum: 0,
    };
    let data = shards
        .into_iter()
        .enumerate()
        .map(|(i, s)| Fragment::new(header(i), s));
    let parity = parity
        .into_iter()
        .enumerate()
        .map(|(j, s)| Fragment::new(header(k + j), s));
    Ok(data.chain(parity).collect())
}

/// A thread keeps its encoder between records only while the encoder's work area is at most
/// this large: a record up to 4 MiB at the default split. Larger records get a fresh encoder,
/// so an idle thread never holds more than this.
pub const ENCODER_KEPT_BYTES_MAX: usize = 4 * 1024 * 1024;

thread_local! {
    /// This thread's encoder, reset for each record: a new one allocates and zeroes a work area
    /// of about k shards (1 MiB for a 1 MiB record), which cost a split as much as the checksum.
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
}

/// The m parity shards of the k equal-length `shards`.
fn encode_parity(k: usize, m: usize, shards: &[Bytes]) -> Result<Vec<Bytes>, CodecError> {
    let engine = |e: reed_solomon_simd::Error| CodecError::Engine(e.to_string());
    let shard_len = shards.first().map_or(0, Bytes::len);
    let encode = |encoder: &mut ReedSolomonEncoder| -> Result<Vec<Bytes>, CodecError> {
        for shard in shards {
            encoder.add_original_shard(shard).map_err(engine)?;
        }
        let result = encoder.encode().map_err(engine)?;
        Ok(result.recovery_iter().map(Bytes::copy_from_slice).collect())
    };
    if k.saturating_mul(shard_len) > ENCODER_KEPT_BYTES_MAX {
        return encode(&mut ReedSolomonEncoder::new(k, m, shard_len).map_err(engine)?);
    }
    ENCODER.with_borrow_mut(|kept| {
        let encoder = match kept {
            Some(encoder) => {
                encoder.reset(k, m, shard_len).map_err(engine)?;
                encoder
            }
            None => kept.insert(ReedSolomonEncoder::new(k, m, shard_len).map_err(engine)?),
        };
        encode(encoder)
    })
}

/// Reassembles a record from any k of its fragments (more are ignored), in one buffer.
pub fn reassemble(fragments: &[Fragment]) -> Result<Bytes, CodecError> {
    reassemble_parts(fragments.to_vec()).map(BytesList::into_bytes)
}

/// Reassembles a record from any k of its fragments (more are ignored) as its k data shards
/// side by side, not joined: with every data fragment at hand this copies nothing, and the
/// payloads are moved, not shared (sharing a buffer that came from a `Vec` allocates). Fragments
/// are verified ones, so the only failures left are too few of them or fragments of different
/// records.
pub fn reassemble_parts(fragments: Vec<Fragment>) -> Result<BytesList, CodecError> {
    let first = fragments
        .first()
        .ok_or(CodecError::TooFewFragments { needed: 1, have: 0 })?
        .header;
    let params =
        CodecParams::new(first.k, first.m).map_err(|_| CodecError::Inconsistent("bad k and m"))?;
    let k = params.k as usize;
    let mut by_index: Vec<Option<Fragment>> = vec![None; params.total()];
    for fragment in fragments {
        let h = &fragment.header;
        if h.record_id != first.record_id || h.k != first.k || h.m != first.m {
            return Err(CodecError::Inconsistent(
                "fragments of different records or splits",
            ));
        }
        if h.record_len != first.record_len || h.payload_len != first.payload_len {
            return Err(CodecError::Inconsistent("fragments of different lengths"));
        }
        let index = h.index as usize;
        by_index[index] = Some(fragment);
    }
    let have = by_index.iter().filter(|f| f.is_some()).count();
    if have < k {
        return Err(CodecError::TooFewFragments { needed: k, have });
    }
    let shards = data_shards(k, params.m as usize, by_index)?;
    // The last shards are padded to the shard length: the record ends at its length.
    Ok(BytesList::from_parts_cut(shards, first.record_len as usize))
}

/// The k data shards, in order: the data fragments' payloads, and those missing decoded from
/// the parity fragments at hand.
fn data_shards(
    k: usize,
    m: usize,
    mut by_index: Vec<Option<Fragment>>,
) -> Result<Vec<Bytes>, CodecError> {
    let mut restored = if by_index[..k].iter().all(Option::is_some) {
        Default::default()
    } else {
        let payloads = |from: usize| {
            by_index[from..]
                .iter()
                .take(if from == 0 { k } else { m })
                .enumerate()
                .filter_map(|(i, f)| f.as_ref().map(|f| (i, &f.payload)))
        };
        reed_solomon_simd::decode(k, m, payloads(0), payloads(k))
            .map_err(|e| CodecError::Engine(e.to_string()))?
    };
    by_index[..k]
        .iter_mut()
        .enumerate()
        .map(|(i, fragment)| match fragment.take() {
            Some(f) => Ok(f.payload),
            None => restored
                .remove(&i)
                .map(Bytes::from)
                .ok_or_else(|| CodecError::Engine(format!("engine did not restore shard {i}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests;
