//! Batch queries: a [`DistriQuery`] asks for a record, or a byte range of it.

use std::str::FromStr;

use crate::id::RecordId;

/// A half-open byte range `start..end` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// One query of a batch: a record id and, optionally, the byte range wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistriQuery {
    pub id: RecordId,
    pub range: Option<ByteRange>,
}

impl DistriQuery {
    /// A query for the whole record.
    pub fn whole(id: RecordId) -> DistriQuery {
        DistriQuery { id, range: None }
    }

    /// The part of a record of `len` bytes this query selects, or why it selects nothing valid.
    pub fn select(&self, len: usize) -> Result<std::ops::Range<usize>, String> {
        match self.range {
            None => Ok(0..len),
            Some(ByteRange { start, end }) if start <= end && end <= len as u64 => {
                Ok(start as usize..end as usize)
            }
            Some(ByteRange { start, end }) => Err(format!(
                "range {start}-{end} is not within the record's {len} bytes"
            )),
        }
    }
}

impl FromStr for DistriQuery {
    type Err = String;

    /// `ID` or `ID:START-END` (end exclusive).
    fn from_str(text: &str) -> Result<DistriQuery, String> {
        let (id_text, range_text) = match text.split_once(':') {
            Some((id, range)) => (id, Some(range)),
            None => (text, None),
        };
        let id = id_text.parse::<RecordId>().map_err(|e| e.to_string())?;
        let range = match range_text {
            None => None,
            Some(range) => {
                let (start, end) = range
                    .split_once('-')
                    .ok_or_else(|| format!("range {range:?} is not START-END"))?;
                let start = start
                    .parse::<u64>()
                    .map_err(|_| format!("range start {start:?} is not a number"))?;
                let end = end
                    .parse::<u64>()
                    .map_err(|_| format!("range end {end:?} is not a number"))?;
                if start > end {
                    return Err(format!("range {start}-{end} ends before it starts"));
                }
                Some(ByteRange { start, end })
            }
        };
        Ok(DistriQuery { id, range })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_ranges() {
        let id = "000000000000000000000000000000ff";
        assert_eq!(
            id.parse::<DistriQuery>().unwrap(),
            DistriQuery::whole(RecordId(255))
        );
        let q: DistriQuery = format!("{id}:3-10").parse().unwrap();
        assert_eq!(q.range, Some(ByteRange { start: 3, end: 10 }));
        assert_eq!(q.select(20), Ok(3..10));
        assert!(q.select(9).is_err());
        assert!(format!("{id}:10-3").parse::<DistriQuery>().is_err());
        assert!(format!("{id}:x-3").parse::<DistriQuery>().is_err());
        assert!("nothex:1-2".parse::<DistriQuery>().is_err());
    }
}
