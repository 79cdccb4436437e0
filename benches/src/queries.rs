//! The batch-query workload of the `queries` bench, and a third place for a query's answer:
//! the story's inline buffer, boxed (the fix the story's expert suggests first).

use bytes::Bytes;
use ddsplit::id::RecordId;
use ddsplit::query::{AnswerSlot, ByteRange, InlineAnswer, QueryAnswer};

/// The story's inline answer buffer behind a `Box`: a query moves a pointer, not 16 KiB.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoxedAnswer(Box<InlineAnswer>);

impl AnswerSlot for BoxedAnswer {
    fn store(&mut self, answer: QueryAnswer) {
        self.0.store(answer);
    }

    fn take(&mut self) -> QueryAnswer {
        self.0.take()
    }
}

/// Records of the default load's sizes (log-uniform, 1 KiB to 64 KiB) and a batch of queries
/// over them, half of them for a byte range, as `ddsplit load` sends them.
#[derive(Debug)]
pub struct QueryWorkload {
    /// The records, indexed by their id.
    pub records: Vec<Bytes>,
    /// The queries of one batch: a record id and an optional range.
    pub batch: Vec<(RecordId, Option<ByteRange>)>,
}

impl QueryWorkload {
    /// `batch_len` queries over 64 records, the same on every run.
    pub fn new(batch_len: usize) -> QueryWorkload {
        const RECORDS: usize = 64;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (min, max) = (1024f64, 64.0 * 1024.0);
        let records: Vec<Bytes> = (0..RECORDS)
            .map(|_| {
                let unit = (next() % 10_000) as f64 / 10_000.0;
                let len = (min * (max / min).powf(unit)) as usize;
                crate::record(len)
            })
            .collect();
        let batch = (0..batch_len)
            .map(|_| {
                let id = (next() % RECORDS as u64) as usize;
                let len = records[id].len() as u64;
                let range = (next() % 2 == 0).then(|| {
                    let start = next() % len;
                    let end = start + next() % (len - start + 1);
                    ByteRange { start, end }
                });
                (RecordId(id as u128), range)
            })
            .collect();
        QueryWorkload { records, batch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddsplit::query::{Query, SharedAnswer, answer_batch, select};

    #[tokio::test]
    async fn boxed_slot_answers_like_the_shared_one() {
        let workload = QueryWorkload::new(20);
        assert!(workload.batch.iter().any(|(_, range)| range.is_some()));
        assert!(workload.batch.iter().any(|(_, range)| range.is_none()));
        async fn run<S: AnswerSlot>(workload: &QueryWorkload) -> Vec<QueryAnswer> {
            let queries: Vec<Query<S>> = workload
                .batch
                .iter()
                .map(|&(id, range)| Query::new(id, range))
                .collect();
            answer_batch(queries, 3, usize::MAX, |id, range| {
                let record = workload.records[id.0 as usize].clone();
                async move {
                    let part = select(range, record.len())
                        .map_err(|e| (ddsplit::error::ErrorCode::BadRequest, e))?;
                    Ok(record.slice(part))
                }
            })
            .await
        }
        let shared = run::<SharedAnswer>(&workload).await;
        assert_eq!(run::<BoxedAnswer>(&workload).await, shared);
        assert_eq!(run::<InlineAnswer>(&workload).await, shared);
        assert!(shared.iter().all(Result::is_ok));
    }
}
