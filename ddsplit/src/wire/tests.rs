//! Wire tests: every message round-trips, and malformed bytes give errors, never panics.

use super::*;
use crate::codec::{CodecParams, split};
use bytes::BufMut;
use rand::{Rng, SeedableRng, rngs::StdRng};

async fn round_trip_frame(frame: &OutFrame) -> (u8, Bytes) {
    let bytes = frame.to_vec();
    let mut input = &bytes[..];
    let (kind, payload) = read_frame(&mut input).await.unwrap().expect("one frame");
    assert!(input.is_empty(), "frame left bytes behind");
    (kind, payload)
}

fn sample_fragment() -> Fragment {
    let data = Bytes::from_static(b"the quick brown fox jumps over the lazy dog");
    split(RecordId(42), &data, CodecParams::default())
        .unwrap()
        .remove(4)
}

fn sample_requests() -> Vec<Request> {
    let key = FragmentKey {
        id: RecordId(7),
        index: 3,
    };
    vec![
        Request::PutFragment(sample_fragment()),
        Request::GetFragment(key),
        Request::DeleteFragments { id: RecordId(1) },
        Request::ListFragments {
            after: None,
            limit: 10,
        },
        Request::ListFragments {
            after: Some(key),
            limit: 10,
        },
        Request::NodeStats,
        Request::Put {
            data: Bytes::from_static(b"hello"),
        },
        Request::Get {
            id: RecordId(u128::MAX),
        },
        Request::Query {
            queries: vec![
                DistriQuery::whole(RecordId(1)),
                DistriQuery::new(RecordId(2), Some(ByteRange { start: 5, end: 9 })),
            ],
        },
        Request::Delete { id: RecordId(3) },
        Request::ClusterStats,
    ]
}

fn sample_responses() -> Vec<Response> {
    vec![
        Response::Done(SuccessCode::Stored),
        Response::Done(SuccessCode::Deleted { fragments: 6 }),
        Response::Fragment(sample_fragment()),
        Response::Stored { id: RecordId(99) },
        Response::Record {
            data: Bytes::from_static(b"record").into(),
        },
        Response::Record {
            data: BytesList::from_parts(vec![
                Bytes::from_static(b"rec"),
                Bytes::from_static(b"ord in parts"),
            ]),
        },
        Response::QueryAnswers(vec![
            Ok(Bytes::from_static(b"abc")),
            Err((ErrorCode::NotFound, "gone".into())),
        ]),
        Response::FragmentKeys(vec![FragmentKey {
            id: RecordId(5),
            index: 0,
        }]),
        Response::Stats("{\"fragments\":1}".into()),
        Response::Error {
            code: ErrorCode::Corrupt,
            message: "bad".into(),
        },
    ]
}

#[tokio::test]
async fn every_request_and_response_round_trips() {
    for request in sample_requests() {
        let (kind, payload) = round_trip_frame(&request.encode()).await;
        assert_eq!(Request::decode(kind, payload).unwrap(), request);
    }
    for response in sample_responses() {
        let (kind, payload) = round_trip_frame(&response.encode()).await;
        assert_eq!(Response::decode(kind, payload).unwrap(), response);
    }
}

#[tokio::test]
async fn oversized_and_short_frames_are_refused_before_buffering() {
    let mut huge = &((FRAME_BODY_MAX as u32 + 1).to_be_bytes())[..];
    assert_eq!(
        read_frame(&mut huge).await,
        Err(WireError::FrameTooLarge {
            len: FRAME_BODY_MAX as u64 + 1
        })
    );
    let mut short = &[0u8, 0, 0, 1, 1][..];
    assert_eq!(
        read_frame(&mut short).await,
        Err(WireError::FrameTooShort { len: 1 })
    );
    let mut truncated = &[0u8, 0, 0, 9, 1, 2][..];
    assert_eq!(
        read_frame(&mut truncated).await,
        Err(WireError::TruncatedFrame)
    );
    let mut empty = &[][..];
    assert_eq!(read_frame(&mut empty).await, Ok(None));
    let mut bad_version = &[0u8, 0, 0, 2, 9, kind::NODE_STATS][..];
    assert_eq!(
        read_frame(&mut bad_version).await,
        Err(WireError::BadVersion(9))
    );
}

#[test]
fn counts_over_their_limits_are_refused() {
    let mut payload = BytesMut::new();
    payload.put_u32(QUERY_COUNT_MAX as u32 + 1);
    let err = Request::decode(kind::QUERY, payload.freeze()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Limit {
                what: "query count",
                ..
            }
        ),
        "{err}"
    );
    let big = Bytes::from(vec![1u8; RECORD_SIZE_MAX + 1]);
    let err = Request::decode(kind::PUT, big).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Limit {
                what: "record size",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_corrupt_fragment_in_a_frame_is_refused() {
    let frame = Request::PutFragment(sample_fragment()).encode().to_vec();
    let mut payload = frame[LEN_PREFIX + BODY_HEAD..].to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 0x40;
    let err = Request::decode(kind::PUT_FRAGMENT, Bytes::from(payload)).unwrap_err();
    assert!(
        matches!(err, WireError::BadFragment(CodecError::Checksum { .. })),
        "{err}"
    );
    assert!(err.is_recoverable());
}

#[test]
fn random_payloads_never_panic() {
    let mut rng = StdRng::seed_from_u64(1);
    let kinds: Vec<u8> = (0..=255).collect();
    let mut encoded: Vec<Vec<u8>> = sample_requests()
        .iter()
        .map(|r| r.encode().to_vec())
        .collect();
    encoded.extend(sample_responses().iter().map(|r| r.encode().to_vec()));
    for round in 0..20_000 {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let payload: Vec<u8> = if round % 2 == 0 {
            let len = rng.gen_range(0..64);
            (0..len).map(|_| rng.r#gen()).collect()
        } else {
            // A real message with a byte changed or cut short.
            let mut bytes =
                encoded[rng.gen_range(0..encoded.len())][LEN_PREFIX + BODY_HEAD..].to_vec();
            if !bytes.is_empty() {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.r#gen();
                bytes.truncate(rng.gen_range(0..=bytes.len()));
            }
            bytes
        };
        let _ = Request::decode(kind, Bytes::from(payload.clone()));
        let _ = Response::decode(kind, Bytes::from(payload));
    }
}

#[tokio::test]
async fn frames_over_their_kinds_limit_are_skipped_unbuffered_and_the_stream_stays_in_step() {
    // A record one byte over the limit, a `get` with a 5000-byte payload, an unknown kind and
    // a frame of another version, each followed by a good frame.
    let good = Request::NodeStats.encode().to_vec();
    let mut stream = Vec::new();
    let mut put = BytesMut::new();
    put.put_u32((RECORD_SIZE_MAX + 1 + BODY_HEAD) as u32);
    put.put_slice(&[PROTOCOL_VERSION, kind::PUT]);
    stream.extend_from_slice(&put);
    stream.resize(stream.len() + RECORD_SIZE_MAX + 1, 0xab);
    stream.extend_from_slice(&good);
    for (version, kind, len) in [
        (PROTOCOL_VERSION, kind::GET, 5000),
        (PROTOCOL_VERSION, 0x7e, 100),
        (PROTOCOL_VERSION + 1, kind::GET, 16),
    ] {
        stream.extend_from_slice(&((len + BODY_HEAD) as u32).to_be_bytes());
        stream.extend_from_slice(&[version, kind]);
        stream.resize(stream.len() + len, 0);
        stream.extend_from_slice(&good);
    }
    let mut input = &stream[..];
    let expected = [
        WireError::Limit {
            what: "record size",
            value: RECORD_SIZE_MAX as u64 + 1,
            limit: RECORD_SIZE_MAX as u64,
        },
        WireError::PayloadTooLong {
            kind: kind::GET,
            len: 5000,
            max: 16,
        },
        WireError::UnknownKind(0x7e),
        WireError::BadVersion(PROTOCOL_VERSION + 1),
    ];
    for want in expected {
        let err = read_frame(&mut input).await.unwrap_err();
        assert_eq!(err, want);
        assert!(err.is_recoverable(), "{err}");
        let (kind, payload) = read_frame(&mut input).await.unwrap().unwrap();
        assert_eq!(Request::decode(kind, payload).unwrap(), Request::NodeStats);
    }
    assert_eq!(read_frame(&mut input).await, Ok(None));
}

#[test]
fn every_kind_this_build_encodes_fits_its_payload_limit() {
    for request in sample_requests() {
        let bytes = request.encode().to_vec();
        let kind = bytes[LEN_PREFIX + 1];
        let max = payload_max(kind).expect("a kind this build sends is known");
        assert!(bytes.len() - LEN_PREFIX - BODY_HEAD <= max, "{request:?}");
    }
    for response in sample_responses() {
        let bytes = response.encode().to_vec();
        let kind = bytes[LEN_PREFIX + 1];
        let max = payload_max(kind).expect("a kind this build sends is known");
        assert!(bytes.len() - LEN_PREFIX - BODY_HEAD <= max, "{response:?}");
    }
    // The largest query batch and repair request fit exactly.
    let queries = (0..QUERY_COUNT_MAX)
        .map(|i| DistriQuery::new(RecordId(i as u128), Some(ByteRange { start: 0, end: 1 })))
        .collect();
    let bytes = Request::Query { queries }.encode().to_vec();
    assert_eq!(
        bytes.len() - LEN_PREFIX - BODY_HEAD,
        payload_max(kind::QUERY).unwrap()
    );
    let ids = (0..REPAIR_IDS_MAX).map(|i| RecordId(i as u128)).collect();
    let bytes = Request::Repair { ids }.encode().to_vec();
    assert_eq!(
        bytes.len() - LEN_PREFIX - BODY_HEAD,
        payload_max(kind::REPAIR).unwrap()
    );
}

/// A peer that resets the connection.
struct Reset;

impl AsyncRead for Reset {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()))
    }
}

#[tokio::test]
async fn a_reset_between_frames_ends_the_stream_and_one_inside_a_frame_is_an_error() {
    assert_eq!(read_frame_head(&mut Reset).await, Ok(None));
    let mut cut = AsyncReadExt::chain(&[0u8, 0][..], Reset);
    assert!(matches!(
        read_frame_head(&mut cut).await,
        Err(WireError::Io(_))
    ));
}

/// A writer that takes at most `max` bytes per call, across the buffers of a vectored write.
struct Trickle {
    out: Vec<u8>,
    max: usize,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.max);
        self.out.extend_from_slice(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut left = self.max;
        for buf in bufs {
            let n = buf.len().min(left);
            self.out.extend_from_slice(&buf[..n]);
            left -= n;
        }
        std::task::Poll::Ready(Ok(self.max - left))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn a_frame_in_several_buffers_is_written_whole_however_short_the_writes() {
    let parts = [&b"abcde"[..], b"f", b"", b"ghijklmno"].map(Bytes::from_static);
    let frame = Response::Record {
        data: BytesList::from_parts(parts.to_vec()),
    }
    .into_frame();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for max in [1, 2, 3, 7, 9, 64, 10_000] {
        let mut out = Trickle {
            out: Vec::new(),
            max,
        };
        rt.block_on(frame.write_to(&mut out)).expect("write");
        assert_eq!(out.out, frame.to_vec(), "at most {max} bytes per write");
    }
    let mut stuck = Trickle {
        out: Vec::new(),
        max: 0,
    };
    let err = rt.block_on(frame.write_to(&mut stuck)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
}
