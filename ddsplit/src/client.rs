//! The Rust client of a gateway: one connection, reopened when it breaks.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::conn::Conn;
use crate::error::{DistriErr, SuccessCode};
use crate::gateway::repair::RepairReport;
use crate::id::RecordId;
use crate::limits::{FRAGMENT_TIMEOUT, QUERY_COUNT_MAX, RECORD_SIZE_MAX, REPAIR_IDS_MAX};
use crate::query::{DistriQuery, QueryAnswer};
use crate::wire::{Request, Response};

/// How long the client waits for a gateway's answer: a gateway may spend a fragment timeout on
/// a slow node and then read from another, so allow for a few.
pub const CLIENT_TIMEOUT: std::time::Duration = FRAGMENT_TIMEOUT.saturating_mul(3);

/// A client of one gateway.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Client {
    /// A client of the gateway at `addr`; connects on first use.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stores a record (1 byte to [`RECORD_SIZE_MAX`]) and returns its new id.
    pub async fn put(&mut self, data: Bytes) -> Result<RecordId, DistriErr> {
        if data.is_empty() || data.len() > RECORD_SIZE_MAX {
            return Err(DistriErr::Limit {
                what: "record size",
                value: data.len() as u64,
                limit: RECORD_SIZE_MAX as u64,
            });
        }
        match self.call(Request::Put { data }).await? {
            Response::Stored { id } => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Reads a whole record.
    pub async fn get(&mut self, id: RecordId) -> Result<Bytes, DistriErr> {
        match self.call(Request::Get { id }).await? {
            Response::Record { data } => Ok(data.into_bytes()),
            other => Err(unexpected(other)),
        }
    }

    /// Answers up to [`QUERY_COUNT_MAX`] queries in one request.
    pub async fn query(
        &mut self,
        queries: Vec<DistriQuery>,
    ) -> Result<Vec<QueryAnswer>, DistriErr> {
        if queries.len() > QUERY_COUNT_MAX {
            return Err(DistriErr::Limit {
                what: "query count",
                value: queries.len() as u64,
                limit: QUERY_COUNT_MAX as u64,
            });
        }
        match self.call(Request::Query { queries }).await? {
            Response::QueryAnswers(answers) => Ok(answers),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a record.
    pub async fn delete(&mut self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        match self.call(Request::Delete { id }).await? {
            Response::Done(code) => Ok(code),
            other => Err(unexpected(other)),
        }
    }

    /// Counters of the gateway and its nodes, as JSON.
    pub async fn stats(&mut self) -> Result<String, DistriErr> {
        match self.call(Request::ClusterStats).await? {
            Response::Stats(json) => Ok(json),
            other => Err(unexpected(other)),
        }
    }

    /// Brings the records `ids` back to k + m intact fragments (any number of ids: they are
    /// sent [`REPAIR_IDS_MAX`] at a time).
    pub async fn repair(&mut self, ids: &[RecordId]) -> Result<RepairReport, DistriErr> {
        let mut report = RepairReport::default();
        for chunk in ids.chunks(REPAIR_IDS_MAX) {
            let page = self
                .repair_report(Request::Repair {
                    ids: chunk.to_vec(),
                })
                .await?;
            report.merge(page);
        }
        Ok(report)
    }

    /// Repairs one page of the records the nodes hold, after `after`; the report's `next` is
    /// the cursor of the next page.
    pub async fn repair_scan(
        &mut self,
        after: Option<RecordId>,
    ) -> Result<RepairReport, DistriErr> {
        self.repair_report(Request::RepairScan { after }).await
    }

    /// Repairs every record the nodes hold, page by page; `progress` sees each page's report.
    pub async fn repair_all(
        &mut self,
        mut progress: impl FnMut(&RepairReport),
    ) -> Result<RepairReport, DistriErr> {
        let mut report = RepairReport::default();
        loop {
            let page = self.repair_scan(report.next).await?;
            progress(&page);
            report.merge(page);
            if report.next.is_none() {
                return Ok(report);
            }
        }
    }

    async fn repair_report(&mut self, request: Request) -> Result<RepairReport, DistriErr> {
        match self.call(request).await? {
            Response::Stats(json) => serde_json::from_str(&json).map_err(|e| {
                DistriErr::BadRequest(format!("gateway sent a malformed repair report: {e}").into())
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn call(&mut self, request: Request) -> Result<Response, DistriErr> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(Conn::connect(self.addr).await?),
        };
        let result = conn
            .call_within(&request, CLIENT_TIMEOUT, "gateway request")
            .await;
        // After anything but a whole exchange the connection's state is unknown: drop it.
        if !matches!(result, Ok(_) | Err(DistriErr::Remote { .. })) {
            self.conn = None;
        }
        result
    }
}

fn unexpected(response: Response) -> DistriErr {
    DistriErr::BadRequest(format!("unexpected response from gateway: {response:?}").into())
}
