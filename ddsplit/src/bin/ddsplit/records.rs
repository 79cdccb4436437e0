//! The record commands: put, get, query, delete, repair and stats through a gateway.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bytes::Bytes;
use ddsplit::client::Client;
use ddsplit::error::{DistriErr, ErrorCode};
use ddsplit::gateway;
use ddsplit::id::RecordId;
use ddsplit::limits::RECORD_SIZE_MAX;
use ddsplit::query::DistriQuery;

/// `ddsplit put`: stores the record in `file` (or standard input) and prints its id.
pub async fn put(gateway: SocketAddr, file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let data = match &file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => read_stdin()?,
    };
    if data.is_empty() {
        bail!("nothing to store: the record is empty (records hold 1 to {RECORD_SIZE_MAX} bytes)");
    }
    if data.len() > RECORD_SIZE_MAX {
        bail!(
            "the record is {} bytes, over the limit of {RECORD_SIZE_MAX}",
            data.len()
        );
    }
    let id = Client::new(gateway)
        .put(Bytes::from(data))
        .await
        .map_err(explain)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `ddsplit get`: writes the record to `output` (or standard output).
pub async fn get(
    gateway: SocketAddr,
    id: RecordId,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let data = Client::new(gateway).get(id).await.map_err(explain)?;
    write_output(output.as_ref(), &data)?;
    Ok(ExitCode::SUCCESS)
}

/// `ddsplit query`: answers a batch of queries; prints each answer's size and checksum, or
/// writes their bytes to `output`.
pub async fn query(
    gateway: SocketAddr,
    queries: Vec<DistriQuery>,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let answers = Client::new(gateway)
        .query(queries.clone())
        .await
        .map_err(explain)?;
    let mut failed = false;
    let mut all = Vec::new();
    for (query, answer) in queries.iter().zip(&answers) {
        match answer {
            Ok(data) if output.is_some() => all.extend_from_slice(data),
            Ok(data) => println!(
                "{} {} bytes crc32c {:08x}",
                query.id,
                data.len(),
                crc32c::crc32c(data)
            ),
            Err((code, message)) => {
                failed = true;
                eprintln!("{}: {code}: {message}", query.id);
            }
        }
    }
    if output.is_some() {
        write_output(output.as_ref(), &all)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `ddsplit delete`.
pub async fn delete(gateway: SocketAddr, id: RecordId) -> anyhow::Result<ExitCode> {
    let done = Client::new(gateway).delete(id).await.map_err(explain)?;
    println!("{id} deleted ({done:?})");
    Ok(ExitCode::SUCCESS)
}

/// `ddsplit repair`: the records `ids`, or every record when none is given.
pub async fn repair(
    gateway: SocketAddr,
    ids: Vec<RecordId>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(gateway);
    let report = if ids.is_empty() {
        client.repair_all(|_| {}).await
    } else {
        client.repair(&ids).await
    }
    .map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", gateway::repair::summary(&report));
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ddsplit stats`: the cluster's counters, pretty-printed.
pub async fn stats(gateway: SocketAddr) -> anyhow::Result<ExitCode> {
    let json = Client::new(gateway).stats().await.map_err(explain)?;
    let value: serde_json::Value = serde_json::from_str(&json)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}

/// Turns a gateway's error into a message for a person.
fn explain(e: DistriErr) -> anyhow::Error {
    match e {
        DistriErr::Remote {
            code: ErrorCode::NotFound,
            message,
        } => anyhow::anyhow!("{message}"),
        DistriErr::Remote {
            code: ErrorCode::Unavailable,
            message,
        } => {
            anyhow::anyhow!(
                "{message}\n(fewer than k fragments could be read: too many nodes are down or damaged)"
            )
        }
        DistriErr::Io {
            context: "connecting",
            source,
        } => {
            anyhow::anyhow!("cannot reach the gateway: {source} (is it running? see --gateway)")
        }
        other => anyhow::Error::new(other),
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin()
        .take(RECORD_SIZE_MAX as u64 + 1)
        .read_to_end(&mut data)
        .context("reading standard input")?;
    Ok(data)
}

fn write_output(path: Option<&PathBuf>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
            Ok(())
        }
    }
}
