//! Batch queries: a [`DistriQuery`] asks for a record, or a byte range of it, and carries its
//! answer while the gateway works through the batch ([`answer_batch`]).
//!
//! The default build keeps a query small: the answer is a reference-counted buffer. The
//! `story-query-by-value` feature brings back the story's version: each query carries a 16 KiB
//! inline buffer for small answers (to save an allocation), so every push and pop of the batch's
//! `Vec<DistriQuery>` moves 16 KiB.

use std::future::Future;
use std::str::FromStr;

use bytes::Bytes;

use crate::id::RecordId;
use crate::status::ErrorCode;

/// One answer of a batch query: the bytes, or an error code and message.
pub type QueryAnswer = Result<Bytes, (ErrorCode, String)>;

/// Answers at most this large are kept inside the query by [`InlineAnswer`].
pub const QUERY_INLINE_ANSWER_BYTES: usize = 16 * 1024;

/// A half-open byte range `start..end` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Where a query keeps its answer between being answered and being sent.
pub trait AnswerSlot:
    Default + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// Keeps `answer`.
    fn store(&mut self, answer: QueryAnswer);
    /// Gives the answer back (an error if none was stored).
    fn take(&mut self) -> QueryAnswer;
}

/// The default slot: the answer itself, sharing the record's buffer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedAnswer(Option<QueryAnswer>);

impl AnswerSlot for SharedAnswer {
    fn store(&mut self, answer: QueryAnswer) {
        self.0 = Some(answer);
    }

    fn take(&mut self) -> QueryAnswer {
        self.0.take().unwrap_or_else(unanswered)
    }
}

/// The story's slot: answers up to [`QUERY_INLINE_ANSWER_BYTES`] copied into a buffer inside
/// the query, larger ones and errors kept aside.
#[derive(Clone, Debug, PartialEq)]
pub struct InlineAnswer {
    inline_len: Option<u32>,
    inline: [u8; QUERY_INLINE_ANSWER_BYTES],
    other: Option<QueryAnswer>,
}

impl Default for InlineAnswer {
    fn default() -> InlineAnswer {
        InlineAnswer {
            inline_len: None,
            inline: [0; QUERY_INLINE_ANSWER_BYTES],
            other: None,
        }
    }
}

impl AnswerSlot for InlineAnswer {
    fn store(&mut self, answer: QueryAnswer) {
        match answer {
            Ok(data) if data.len() <= QUERY_INLINE_ANSWER_BYTES => {
                self.inline[..data.len()].copy_from_slice(&data);
                self.inline_len = Some(data.len() as u32);
            }
            other => self.other = Some(other),
        }
    }

    fn take(&mut self) -> QueryAnswer {
        match self.inline_len.take() {
            Some(len) => Ok(Bytes::copy_from_slice(&self.inline[..len as usize])),
            None => self.other.take().unwrap_or_else(unanswered),
        }
    }
}

fn unanswered() -> QueryAnswer {
    Err((ErrorCode::Internal, "query was not answered".into()))
}

/// One query of a batch, generic over where it keeps its answer (benchmarks run both kinds).
#[derive(Clone, Debug, PartialEq)]
pub struct Query<S> {
    pub id: RecordId,
    pub range: Option<ByteRange>,
    answer: S,
}

/// The service's query.
#[cfg(not(feature = "story-query-by-value"))]
pub type DistriQuery = Query<SharedAnswer>;

/// The service's query: the story's large one.
#[cfg(feature = "story-query-by-value")]
pub type DistriQuery = Query<InlineAnswer>;

#[cfg(not(feature = "story-query-by-value"))]
const _: () = assert!(size_of::<DistriQuery>() <= 96);

impl<S: AnswerSlot> Query<S> {
    /// A query for `range` of record `id` (`None`: all of it).
    pub fn new(id: RecordId, range: Option<ByteRange>) -> Query<S> {
        Query {
            id,
            range,
            answer: S::default(),
        }
    }

    /// A query for the whole record.
    pub fn whole(id: RecordId) -> Query<S> {
        Query::new(id, None)
    }
}

/// The part of a record of `len` bytes that `range` selects, or why it selects nothing valid.
pub fn select(range: Option<ByteRange>, len: usize) -> Result<std::ops::Range<usize>, String> {
    match range {
        None => Ok(0..len),
        Some(ByteRange { start, end }) if start <= end && end <= len as u64 => {
            Ok(start as usize..end as usize)
        }
        Some(ByteRange { start, end }) => Err(format!(
            "range {start}-{end} is not within the record's {len} bytes"
        )),
    }
}

/// Answers a batch in order, `concurrency` queries at a time: queries are popped from the
/// pending list into a wave, answered together, and pushed to the answered list, by value.
/// Answers past `bytes_max` in total become errors, so the response stays bounded.
pub async fn answer_batch<S, F, Fut>(
    queries: Vec<Query<S>>,
    concurrency: usize,
    bytes_max: usize,
    resolve: F,
) -> Vec<QueryAnswer>
where
    S: AnswerSlot,
    F: Fn(RecordId, Option<ByteRange>) -> Fut,
    Fut: Future<Output = QueryAnswer>,
{
    let mut pending = queries;
    pending.reverse();
    let mut answered: Vec<Query<S>> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let mut wave = Vec::with_capacity(concurrency);
        while wave.len() < concurrency {
            match pending.pop() {
                Some(query) => wave.push(query),
                None => break,
            }
        }
        let answers = futures::future::join_all(wave.iter().map(|q| resolve(q.id, q.range))).await;
        for (mut query, answer) in wave.into_iter().zip(answers) {
            query.answer.store(answer);
            answered.push(query);
        }
    }
    let mut total = 0usize;
    answered
        .into_iter()
        .map(|mut query| match query.answer.take() {
            Ok(data) if total + data.len() > bytes_max => Err((
                ErrorCode::LimitExceeded,
                format!(
                    "answer of {} bytes would take the batch past {bytes_max} bytes",
                    data.len()
                ),
            )),
            Ok(data) => {
                total += data.len();
                Ok(data)
            }
            Err(e) => Err(e),
        })
        .collect()
}

impl<S: AnswerSlot> FromStr for Query<S> {
    type Err = String;

    /// `ID` or `ID:START-END` (end exclusive).
    fn from_str(text: &str) -> Result<Query<S>, String> {
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
        Ok(Query::new(id, range))
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
        assert_eq!(select(q.range, 20), Ok(3..10));
        assert!(select(q.range, 9).is_err());
        assert!(format!("{id}:10-3").parse::<DistriQuery>().is_err());
        assert!(format!("{id}:x-3").parse::<DistriQuery>().is_err());
        assert!("nothex:1-2".parse::<DistriQuery>().is_err());
    }

    async fn batch_of<S: AnswerSlot>(n: usize, bytes_max: usize) -> Vec<QueryAnswer> {
        let queries: Vec<Query<S>> = (0..n as u128)
            .map(|i| Query::new(RecordId(i), None))
            .collect();
        answer_batch(queries, 3, bytes_max, |id, _| async move {
            match id.0 % 3 {
                0 => Ok(Bytes::from(vec![id.0 as u8; 10])),
                1 => Ok(Bytes::from(vec![id.0 as u8; QUERY_INLINE_ANSWER_BYTES + 1])),
                _ => Err((ErrorCode::NotFound, format!("{id}"))),
            }
        })
        .await
    }

    #[tokio::test]
    async fn both_slots_answer_in_order_with_the_same_bytes() {
        let shared = batch_of::<SharedAnswer>(10, usize::MAX).await;
        let inline = batch_of::<InlineAnswer>(10, usize::MAX).await;
        assert_eq!(shared, inline);
        for (i, answer) in shared.iter().enumerate() {
            match i % 3 {
                0 => assert_eq!(answer.as_ref().unwrap()[..], [i as u8; 10]),
                1 => assert_eq!(
                    answer.as_ref().unwrap().len(),
                    QUERY_INLINE_ANSWER_BYTES + 1
                ),
                _ => assert_eq!(answer.as_ref().unwrap_err().0, ErrorCode::NotFound),
            }
        }
    }

    #[tokio::test]
    async fn answers_past_the_byte_limit_become_errors() {
        let answers = batch_of::<SharedAnswer>(4, 30).await;
        assert!(answers[0].is_ok());
        assert_eq!(answers[1].as_ref().unwrap_err().0, ErrorCode::LimitExceeded);
        assert_eq!(
            answers[3].as_ref().unwrap(),
            &Bytes::from(vec![3u8; 10]),
            "smaller answers still fit"
        );
    }
}
