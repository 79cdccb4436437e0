//! Codec tests: round trips over every split, every subset of k fragments, and bit flips.

use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn record(len: usize, seed: u64) -> Bytes {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    Bytes::from(data)
}

fn all_params() -> impl Iterator<Item = CodecParams> {
    (1..FRAGMENT_COUNT_MAX as u8).flat_map(|k| {
        (1..=(FRAGMENT_COUNT_MAX as u8 - k)).map(move |m| CodecParams::new(k, m).expect("in range"))
    })
}

/// Every `k`-element subset of `0..n`, as index lists.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() as usize == k)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn every_split_round_trips_small_and_odd_sizes() {
    for params in all_params() {
        let k = params.k() as usize;
        for len in [1, 2, 3, k - 1, k, k + 1, 2 * k + 1, 1000, 4097] {
            if len == 0 {
                continue;
            }
            let data = record(len, len as u64);
            let id = RecordId(len as u128);
            let fragments = split(id, &data, params).unwrap();
            assert_eq!(fragments.len(), params.total());
            let back = reassemble(&fragments).unwrap();
            assert_eq!(back, data, "k={} m={} len={len}", params.k(), params.m());
        }
    }
}

#[test]
fn largest_record_round_trips_and_one_more_byte_is_refused() {
    let data = record(RECORD_SIZE_MAX, 7);
    for (k, m) in [(4, 2), (1, 1), (13, 3)] {
        let params = CodecParams::new(k, m).unwrap();
        let mut fragments = split(RecordId(1), &data, params).unwrap();
        // Lose the first m fragments so the largest record is decoded, not concatenated.
        fragments.drain(..m as usize);
        assert_eq!(reassemble(&fragments).unwrap(), data, "k={k} m={m}");
    }
    let too_big = Bytes::from(vec![0u8; RECORD_SIZE_MAX + 1]);
    assert_eq!(
        split(RecordId(1), &too_big, CodecParams::default()),
        Err(CodecError::BadRecordLen {
            len: RECORD_SIZE_MAX + 1
        })
    );
    assert_eq!(
        split(RecordId(1), &Bytes::new(), CodecParams::default()),
        Err(CodecError::BadRecordLen { len: 0 })
    );
}

/// Largest k + m whose every k-subset is decoded. The decoder has a fixed cost of about a
/// millisecond (a transform over the whole GF(2^16) field), so all 131,038 subsets up to
/// [`FRAGMENT_COUNT_MAX`] would take minutes; larger splits get sampled subsets below.
const EXHAUSTIVE_TOTAL_MAX: usize = 10;

fn check_subset(fragments: &[Fragment], subset: &[usize], data: &Bytes) {
    let chosen: Vec<Fragment> = subset.iter().map(|&i| fragments[i].clone()).collect();
    assert_eq!(
        &reassemble(&chosen).unwrap(),
        data,
        "subset={subset:?} of {}",
        fragments.len()
    );
}

#[test]
fn every_subset_of_k_fragments_decodes() {
    let mut decoded = 0usize;
    for params in all_params().filter(|p| p.total() <= EXHAUSTIVE_TOTAL_MAX) {
        let (k, n) = (params.k() as usize, params.total());
        let data = record(3 * k + 5, n as u64);
        let fragments = split(RecordId(n as u128), &data, params).unwrap();
        for subset in subsets(n, k) {
            check_subset(&fragments, &subset, &data);
            decoded += 1;
        }
        if k > 1 {
            assert_eq!(
                reassemble(&fragments[..k - 1]),
                Err(CodecError::TooFewFragments {
                    needed: k,
                    have: k - 1
                })
            );
        }
    }
    // Sum over n = 2..=10 of (2^n - 2): pins that no subset was skipped.
    assert_eq!(decoded, 2_026);
}

#[test]
fn sampled_subsets_of_large_splits_decode() {
    let mut rng = StdRng::seed_from_u64(11);
    for params in all_params().filter(|p| p.total() > EXHAUSTIVE_TOTAL_MAX) {
        let (k, n) = (params.k() as usize, params.total());
        let data = record(5 * k + 1, n as u64);
        let fragments = split(RecordId(n as u128), &data, params).unwrap();
        // The last k (as many parity fragments as possible), then random choices.
        check_subset(&fragments, &((n - k)..n).collect::<Vec<_>>(), &data);
        for _ in 0..3 {
            let mut subset: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = rng.gen_range(i..n);
                subset.swap(i, j);
            }
            subset.truncate(k);
            check_subset(&fragments, &subset, &data);
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_in_a_fragment_is_detected() {
    let params = CodecParams::new(3, 2).unwrap();
    let data = record(301, 3);
    for fragment in split(RecordId(9), &data, params).unwrap() {
        let encoded = fragment.to_bytes();
        assert_eq!(Fragment::decode(encoded.clone()).unwrap(), fragment);
        for byte in 0..encoded.len() {
            for bit in [0, 3, 7] {
                let mut damaged = encoded.to_vec();
                damaged[byte] ^= 1 << bit;
                let result = Fragment::decode(Bytes::from(damaged));
                assert!(
                    result.is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }
}

#[test]
fn truncated_and_extended_fragments_are_refused() {
    let fragment = split(RecordId(5), &record(100, 5), CodecParams::default())
        .unwrap()
        .remove(0);
    let encoded = fragment.to_bytes();
    for len in 0..encoded.len() {
        assert!(
            Fragment::decode(encoded.slice(..len)).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    let mut longer = encoded.to_vec();
    longer.push(0);
    assert!(Fragment::decode(Bytes::from(longer)).is_err());
}

#[test]
fn bad_params_are_refused() {
    assert!(CodecParams::new(0, 2).is_err());
    assert!(CodecParams::new(4, 0).is_err());
    assert!(CodecParams::new(FRAGMENT_COUNT_MAX as u8, 1).is_err());
    assert!(CodecParams::new(FRAGMENT_COUNT_MAX as u8 - 1, 1).is_ok());
}
