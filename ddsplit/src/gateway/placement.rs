//! Rendezvous (highest random weight) hashing: which node holds which fragment of a record,
//! computed from the record id and the node list alone, so no metadata store is needed.
//!
//! Every node gets a score for the record; nodes sorted by score, highest first, hold fragments
//! 0, 1, 2, ... Adding or removing a node moves only the fragments whose ranking it changes.

use std::net::SocketAddr;

use crate::id::RecordId;

/// A stable 64-bit mix (SplitMix64's finalizer): the placement must not change between builds
/// or Rust versions, so it uses no std hasher.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a of a node's address text, its identity for placement.
fn node_key(addr: &SocketAddr) -> u64 {
    addr.to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The placement of records over a fixed list of nodes.
#[derive(Clone, Debug)]
pub struct Placement {
    node_keys: Vec<u64>,
}

impl Placement {
    /// A placement over `nodes` (their order does not matter).
    pub fn new(nodes: &[SocketAddr]) -> Placement {
        Placement {
            node_keys: nodes.iter().map(node_key).collect(),
        }
    }

    /// Node indices ranked for `id`, highest score first: fragment `i` lives on `ranked[i]`.
    pub fn ranked(&self, id: RecordId) -> Vec<usize> {
        let (hi, lo) = ((id.0 >> 64) as u64, id.0 as u64);
        let mut scored: Vec<(u64, usize)> = self
            .node_keys
            .iter()
            .enumerate()
            .map(|(i, key)| (mix(mix(hi ^ key) ^ lo), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().map(|(_, i)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7500 + i)))
            .collect()
    }

    #[test]
    fn fragments_of_a_record_land_on_distinct_nodes_and_spread_evenly() {
        let placement = Placement::new(&nodes(6));
        let mut firsts = [0usize; 6];
        for i in 0..6000u128 {
            let ranked = placement.ranked(RecordId(
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
            ));
            let mut sorted = ranked.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4, 5], "a ranking is a permutation");
            firsts[ranked[0]] += 1;
        }
        for count in firsts {
            assert!((800..1200).contains(&count), "uneven spread: {firsts:?}");
        }
    }

    #[test]
    fn node_order_does_not_matter_and_removal_moves_little() {
        let all = nodes(8);
        let mut shuffled = all.clone();
        shuffled.reverse();
        let (a, b) = (Placement::new(&all), Placement::new(&shuffled));
        let fewer = Placement::new(&all[..7]);
        let mut moved = 0;
        for i in 0..1000u128 {
            let id = RecordId(i << 64 | i);
            let by_addr = |p: &Placement, list: &[SocketAddr]| -> Vec<SocketAddr> {
                p.ranked(id).into_iter().map(|n| list[n]).collect()
            };
            assert_eq!(by_addr(&a, &all), by_addr(&b, &shuffled));
            // Dropping node 7 keeps the relative order of the others.
            let before: Vec<SocketAddr> = by_addr(&a, &all)
                .into_iter()
                .filter(|n| *n != all[7])
                .collect();
            assert_eq!(before, by_addr(&fewer, &all[..7]));
            if by_addr(&a, &all)[..6].contains(&all[7]) {
                moved += 1;
            }
        }
        assert!(
            moved < 850,
            "only records that had a fragment on the removed node move: {moved}"
        );
    }
}
