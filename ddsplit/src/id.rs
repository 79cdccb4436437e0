//! Record identifiers: 128 random bits, written as 32 hex digits.

use std::fmt;
use std::str::FromStr;

/// The identifier of a record, chosen by the gateway when the record is stored.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RecordId(pub u128);

impl RecordId {
    /// A fresh random identifier: 128 bits make collisions negligible without coordination.
    pub fn random() -> RecordId {
        RecordId(rand::random::<u128>())
    }

    /// The identifier's bytes, big-endian, as carried on the wire and on disk.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The identifier from its wire bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> RecordId {
        RecordId(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

/// A record id that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("record id {0:?} is not 32 hexadecimal digits")]
pub struct BadRecordId(pub String);

impl FromStr for RecordId {
    type Err = BadRecordId;

    fn from_str(text: &str) -> Result<RecordId, BadRecordId> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadRecordId(text.to_owned()));
        }
        u128::from_str_radix(text, 16)
            .map(RecordId)
            .map_err(|_| BadRecordId(text.to_owned()))
    }
}

/// In JSON (reports, stats) an id is its 32 hex digits, as on the command line.
impl serde::Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(input: D) -> Result<RecordId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(input)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let id = RecordId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();
        assert_eq!(text, "0123456789abcdef0011223344556677");
        assert_eq!(text.parse::<RecordId>().unwrap(), id);
        assert_eq!(RecordId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "xyz",
            "0123456789abcdef001122334455667",
            "g123456789abcdef0011223344556677",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad:?} parsed");
        }
    }
}
