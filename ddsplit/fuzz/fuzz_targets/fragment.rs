//! Fuzz target: arbitrary bytes as a fragment (header, then payload). Only bytes that are a
//! fragment, checksum and all, may decode, and they re-encode to themselves.
#![no_main]

use bytes::Bytes;
use ddsplit::codec::{Fragment, FragmentHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = FragmentHeader::parse(data) {
        assert_eq!(
            FragmentHeader::parse(&header.to_bytes()).expect("a parsed header re-parses"),
            header
        );
    }
    match Fragment::decode(Bytes::copy_from_slice(data)) {
        Ok(fragment) => assert_eq!(&fragment.to_bytes()[..], data),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
