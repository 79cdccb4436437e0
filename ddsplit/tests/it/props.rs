//! Property tests of everything that reads bytes from outside: the frame decoder, the fragment
//! header, and log recovery. Arbitrary and damaged input never panics and always gives an error
//! that says something; what is encoded decodes to itself; a damaged log keeps every intact
//! entry and never hands back a wrong fragment.

use bytes::Bytes;
use ddsplit::bytes_list::BytesList;
use ddsplit::codec::{CodecParams, Fragment, FragmentHeader, reassemble, split};
use ddsplit::error::{ErrorCode, SuccessCode};
use ddsplit::id::RecordId;
use ddsplit::limits::{FRAGMENT_COUNT_MAX, FRAGMENT_HEADER_LEN, RECORD_SIZE_MAX};
use ddsplit::query::{ByteRange, DistriQuery};
use ddsplit::store::log::{FragmentLog, FsyncPolicy, LOG_FILE_NAME};
use ddsplit::wire::{FragmentKey, Request, Response, read_frame};
use proptest::prelude::*;

/// Cases per decoder property: decoding is cheap, so many.
const DECODER_CASES: u32 = 2048;
/// Cases per log property: each writes and recovers a real log file.
const LOG_CASES: u32 = 96;
/// Bytes of a log entry's header.
const ENTRY_HEADER_LEN: usize = 16;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every frame in `bytes`, decoded as a request and as a response; errors must say something.
fn decode_stream(bytes: &[u8]) -> usize {
    let rt = runtime();
    let mut input = bytes;
    let mut frames = 0;
    loop {
        match rt.block_on(read_frame(&mut input)) {
            Ok(None) => return frames,
            Ok(Some((kind, payload))) => {
                frames += 1;
                if let Err(e) = Request::decode(kind, payload.clone()) {
                    assert!(!e.to_string().is_empty());
                }
                if let Err(e) = Response::decode(kind, payload) {
                    assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                if !e.is_recoverable() {
                    return frames;
                }
            }
        }
    }
}

fn record_id() -> impl Strategy<Value = RecordId> {
    any::<u128>().prop_map(RecordId)
}

fn key() -> impl Strategy<Value = FragmentKey> {
    (record_id(), any::<u8>()).prop_map(|(id, index)| FragmentKey { id, index })
}

fn params() -> impl Strategy<Value = CodecParams> {
    (1..FRAGMENT_COUNT_MAX as u8)
        .prop_flat_map(|k| (Just(k), 1..=FRAGMENT_COUNT_MAX as u8 - k))
        .prop_map(|(k, m)| CodecParams::new(k, m).unwrap())
}

fn fragment() -> impl Strategy<Value = Fragment> {
    (
        record_id(),
        proptest::collection::vec(any::<u8>(), 1..600),
        params(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, data, params, pick)| {
            let mut fragments = split(id, &Bytes::from(data), params).unwrap();
            fragments.swap_remove(pick.index(fragments.len()))
        })
}

fn query() -> impl Strategy<Value = DistriQuery> {
    (
        record_id(),
        proptest::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(id, range)| {
            DistriQuery::new(id, range.map(|(start, end)| ByteRange { start, end }))
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        fragment().prop_map(Request::PutFragment),
        key().prop_map(Request::GetFragment),
        record_id().prop_map(|id| Request::DeleteFragments { id }),
        (proptest::option::of(key()), any::<u32>())
            .prop_map(|(after, limit)| Request::ListFragments { after, limit }),
        Just(Request::NodeStats),
        proptest::collection::vec(any::<u8>(), 1..2000)
            .prop_map(|d| Request::Put { data: d.into() }),
        record_id().prop_map(|id| Request::Get { id }),
        proptest::collection::vec(query(), 0..40).prop_map(|queries| Request::Query { queries }),
        record_id().prop_map(|id| Request::Delete { id }),
        Just(Request::ClusterStats),
        proptest::collection::vec(record_id(), 0..40).prop_map(|ids| Request::Repair { ids }),
        proptest::option::of(record_id()).prop_map(|after| Request::RepairScan { after }),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (1u16..=11).prop_map(ErrorCode::from_u16)
}

fn response() -> impl Strategy<Value = Response> {
    let answer = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|d| Ok(Bytes::from(d))),
        (error_code(), ".{0,40}").prop_map(Err),
    ];
    prop_oneof![
        Just(Response::Done(SuccessCode::Stored)),
        any::<u32>().prop_map(|fragments| Response::Done(SuccessCode::Deleted { fragments })),
        fragment().prop_map(Response::Fragment),
        record_id().prop_map(|id| Response::Stored { id }),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..4).prop_map(
            |parts| Response::Record {
                data: BytesList::from_parts(parts.into_iter().map(Bytes::from).collect()),
            }
        ),
        proptest::collection::vec(answer, 0..20).prop_map(Response::QueryAnswers),
        proptest::collection::vec(key(), 0..50).prop_map(Response::FragmentKeys),
        ".{0,200}".prop_map(Response::Stats),
        (error_code(), ".{0,200}").prop_map(|(code, message)| Response::Error { code, message }),
    ]
}

/// Applies `flips` (position, xor mask) to `bytes`, positions taken modulo its length.
fn damage(bytes: &mut [u8], flips: &[(usize, u8)]) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    for &(at, mask) in flips {
        bytes[at % len] ^= mask.max(1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(DECODER_CASES))]

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        decode_stream(&bytes);
    }

    #[test]
    fn damaged_frames_never_panic_the_frame_decoder(
        request in request(),
        response in response(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = request.encode().to_vec();
        bytes.extend_from_slice(&response.encode().to_vec());
        damage(&mut bytes, &flips);
        decode_stream(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_stream(&bytes);
    }

    #[test]
    fn requests_and_responses_round_trip(request in request(), response in response()) {
        let rt = runtime();
        let bytes = request.encode().to_vec();
        let mut input = &bytes[..];
        let (kind, payload) = rt.block_on(read_frame(&mut input)).unwrap().unwrap();
        prop_assert!(input.is_empty());
        prop_assert_eq!(Request::decode(kind, payload).unwrap(), request);
        let bytes = response.encode().to_vec();
        let mut input = &bytes[..];
        let (kind, payload) = rt.block_on(read_frame(&mut input)).unwrap().unwrap();
        prop_assert_eq!(Response::decode(kind, payload).unwrap(), response);
    }

    #[test]
    fn arbitrary_bytes_are_never_a_fragment(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = FragmentHeader::parse(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
        match Fragment::decode(Bytes::from(bytes.clone())) {
            // Only bytes that are a fragment, checksum and all, decode (and then re-encode
            // to themselves).
            Ok(fragment) => prop_assert_eq!(&fragment.to_bytes()[..], &bytes[..]),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn fragment_headers_round_trip(
        id in record_id(),
        params in params(),
        record_len in 1..=RECORD_SIZE_MAX as u64,
        index in any::<prop::sample::Index>(),
        checksum in any::<u32>(),
    ) {
        let header = FragmentHeader {
            record_id: id,
            index: index.index(params.total()) as u8,
            k: params.k(),
            m: params.m(),
            record_len,
            payload_len: params.shard_len(record_len as usize) as u32,
            checksum,
        };
        prop_assert_eq!(FragmentHeader::parse(&header.to_bytes()).unwrap(), header);
    }

    #[test]
    fn fragments_round_trip_any_k_rebuild_and_any_flipped_bit_is_caught(
        id in record_id(),
        data in proptest::collection::vec(any::<u8>(), 1..3000),
        params in params(),
        bit in any::<prop::sample::Index>(),
        drop in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let data = Bytes::from(data);
        let fragments = split(id, &data, params).unwrap();
        for fragment in &fragments {
            let bytes = fragment.to_bytes();
            prop_assert_eq!(&Fragment::decode(bytes.clone()).unwrap(), fragment);
            let mut flipped = bytes.to_vec();
            let at = bit.index(flipped.len() * 8);
            flipped[at / 8] ^= 1 << (at % 8);
            prop_assert!(Fragment::decode(Bytes::from(flipped)).is_err(), "bit {} flipped and not caught", at);
        }
        // Lose up to m fragments: the rest rebuild the record.
        let mut kept = fragments.clone();
        for pick in drop.iter().take(params.m() as usize) {
            kept.remove(pick.index(kept.len()));
        }
        prop_assert_eq!(reassemble(&kept).unwrap(), data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(LOG_CASES))]

    #[test]
    fn arbitrary_log_files_open_and_take_appends(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        magic_at in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        // Sprinkle entry magic so recovery's resync path runs, not only the first check.
        let mut bytes = bytes;
        for at in &magic_at {
            if bytes.len() >= 4 {
                let at = at.index(bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(b"DDLE");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE_NAME), &bytes).unwrap();
        let rt = runtime();
        let fragment = split(RecordId(9), &Bytes::from_static(b"after recovery"), CodecParams::default()).unwrap().remove(0);
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
        let stats = log.stats();
        prop_assert!(stats.log_bytes <= bytes.len() as u64);
        prop_assert_eq!(stats.recovery.truncated_bytes + stats.log_bytes, bytes.len() as u64);
        rt.block_on(log.put(fragment.clone())).unwrap();
        drop(log);
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
        let key = FragmentKey { id: RecordId(9), index: 0 };
        prop_assert_eq!(rt.block_on(log.get(key)).unwrap(), fragment);
    }

    #[test]
    fn a_damaged_log_keeps_every_intact_entry_and_never_returns_a_wrong_fragment(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..2000), 1..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        // Entries in write order, with where each one lies in the file.
        let mut entries: Vec<(Fragment, std::ops::Range<usize>)> = Vec::new();
        {
            let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
            let mut at = 0;
            for (i, data) in records.iter().enumerate() {
                for fragment in split(RecordId(i as u128 + 1), &Bytes::from(data.clone()), CodecParams::default()).unwrap() {
                    rt.block_on(log.put(fragment.clone())).unwrap();
                    let end = at + ENTRY_HEADER_LEN + FRAGMENT_HEADER_LEN + fragment.payload().len();
                    entries.push((fragment, at..end));
                    at = end;
                }
            }
        }
        let path = dir.path().join(LOG_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        let flipped: Vec<usize> = flips.iter().map(|&(at, _)| at % len).collect();
        damage(&mut bytes, &flips);
        let end = cut.map_or(len, |c| c.index(len + 1));
        bytes.truncate(end);
        std::fs::write(&path, &bytes).unwrap();

        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
        for (fragment, span) in &entries {
            let key = FragmentKey { id: fragment.header().record_id, index: fragment.header().index };
            let intact = span.end <= end && !flipped.iter().any(|at| span.contains(at));
            match rt.block_on(log.get(key)) {
                Ok(read) => prop_assert_eq!(&read, fragment, "a fragment read back different"),
                Err(e) => prop_assert!(!intact, "intact entry {:?} lost: {}", span, e),
            }
        }
    }
}
