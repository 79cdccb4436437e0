//! Garbage, truncated, oversized and malformed frames sent to a gateway and to a node: they
//! answer with an error frame or close the connection, keep serving, and lose nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ddsplit::codec::{CodecParams, split};
use ddsplit::error::ErrorCode;
use ddsplit::id::RecordId;
use ddsplit::limits::{FRAME_BODY_MAX, QUERY_COUNT_MAX, RECORD_SIZE_MAX};
use ddsplit::wire::{PROTOCOL_VERSION, Request, Response, read_frame};

use crate::support::{COMMAND_TIMEOUT, Cluster, EVERY_FRAGMENT, output_within, record};

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = crate::support::connect(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one response frame, or `None` if the server closed the connection.
fn read_response(stream: &mut TcpStream) -> Option<Response> {
    let mut bytes = Vec::new();
    let mut prefix = [0u8; 4];
    if stream.read_exact(&mut prefix).is_err() {
        return None;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    bytes.extend_from_slice(&prefix);
    bytes.resize(4 + len, 0);
    stream.read_exact(&mut bytes[4..]).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (kind, payload) = rt.block_on(read_frame(&mut &bytes[..])).ok()??;
    Some(Response::decode(kind, payload).expect("server frames decode"))
}

fn error_code(response: Option<Response>) -> ErrorCode {
    match response {
        Some(Response::Error { code, .. }) => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[PROTOCOL_VERSION, kind]);
    out.extend_from_slice(payload);
    out
}

/// Each attack on `addr`; `stats` is a request the server answers normally.
fn attack(addr: SocketAddr, stats: &Request) {
    // A length over the limit: an error frame, then the connection is closed.
    let mut s = connect(addr);
    s.write_all(&(FRAME_BODY_MAX as u32 + 1).to_be_bytes())
        .unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::LimitExceeded);
    assert!(
        read_response(&mut s).is_none(),
        "connection closed after an oversized frame"
    );

    // Garbage: whatever it parses as, the server answers or closes, and does not hang.
    for seed in 0..20u64 {
        let mut s = connect(addr);
        let _ = s.write_all(&record(seed, 64 + seed as usize * 50));
        let _ = s.shutdown(std::net::Shutdown::Write);
        while read_response(&mut s).is_some() {}
    }

    // Truncated: a frame that promises 100 bytes and delivers 10.
    let mut s = connect(addr);
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(&[PROTOCOL_VERSION; 10]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    while read_response(&mut s).is_some() {}

    // Unknown kind, bad version, trailing bytes: an error frame each, and the same connection
    // goes on to answer a good request.
    let mut s = connect(addr);
    s.write_all(&frame(0x77, b"")).unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::BadRequest);
    let mut bad_version = frame(0x12, &[0; 16]);
    bad_version[4] = PROTOCOL_VERSION + 1;
    s.write_all(&bad_version).unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::BadRequest);
    s.write_all(&frame(0x12, &[0; 17])).unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::BadRequest);
    // Too many queries: refused before anything is allocated for them.
    s.write_all(&frame(0x13, &(QUERY_COUNT_MAX as u32 + 1).to_be_bytes()))
        .unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::LimitExceeded);
    // A message longer than its kind allows: refused unbuffered, and the stream stays in step.
    s.write_all(&frame(0x12, &[7; 5000])).unwrap();
    assert_eq!(error_code(read_response(&mut s)), ErrorCode::BadRequest);
    s.write_all(&stats.encode().to_vec()).unwrap();
    assert!(matches!(read_response(&mut s), Some(Response::Stats(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_refused_and_nothing_stored_is_lost() {
    let cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let mut client = cluster.client();
    let data = record(1, 50_000);
    let id = client.put(data.clone()).await.unwrap();

    let gateway = cluster.gateway;
    let node = cluster.nodes[0].addr;
    tokio::task::spawn_blocking(move || {
        attack(gateway, &Request::ClusterStats);
        attack(node, &Request::NodeStats);
        // A fragment whose checksum fails is refused by the node, and never stored.
        let fragment = split(RecordId(7), &record(2, 100), CodecParams::default())
            .unwrap()
            .remove(0);
        let mut bytes = Request::PutFragment(fragment).encode().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut s = connect(node);
        s.write_all(&bytes).unwrap();
        assert_eq!(error_code(read_response(&mut s)), ErrorCode::BadRequest);
        // A node operation sent to the gateway is refused with a reason.
        let mut s = connect(gateway);
        s.write_all(&Request::NodeStats.encode().to_vec()).unwrap();
        match read_response(&mut s) {
            Some(Response::Error {
                code: ErrorCode::BadRequest,
                message,
            }) => {
                assert!(message.contains("fragment node operation"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();

    for node in &cluster.nodes {
        assert!(node.proc.is_some());
    }
    assert_eq!(
        client.get(id).await.unwrap(),
        data,
        "stored record intact after the attacks"
    );
    let stats: serde_json::Value = serde_json::from_str(&client.stats().await.unwrap()).unwrap();
    for node in stats["nodes"].as_array().unwrap() {
        assert_eq!(
            node["stats"]["fragments"], 1,
            "no stray fragment stored: {node}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_limit_is_refused_and_the_connection_goes_on() {
    let cluster = Cluster::start(6, &[]);
    let gateway = cluster.gateway;
    tokio::task::spawn_blocking(move || {
        let mut s = connect(gateway);
        // One byte over: the gateway refuses it from the frame's head, reads the rest of the
        // frame away without keeping it, and answers the next request on the same connection.
        s.write_all(&frame(0x11, &vec![1u8; RECORD_SIZE_MAX + 1]))
            .unwrap();
        match read_response(&mut s) {
            Some(Response::Error {
                code: ErrorCode::LimitExceeded,
                message,
            }) => assert!(message.contains("record size"), "{message}"),
            other => panic!("{other:?}"),
        }
        s.write_all(&Request::ClusterStats.encode().to_vec())
            .unwrap();
        assert!(matches!(read_response(&mut s), Some(Response::Stats(_))));
    })
    .await
    .unwrap();
    // The client library refuses it before sending.
    let err = cluster
        .client()
        .put(record(1, RECORD_SIZE_MAX + 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn k_plus_m_over_the_limit_is_refused_at_start() {
    let nodes: Vec<String> = (0..17)
        .map(|_| crate::support::free_addr().to_string())
        .collect();
    for command in [
        vec![
            "gateway",
            "--k",
            "12",
            "--m",
            "5",
            "--nodes",
            &nodes.join(","),
        ],
        vec!["local", "--k", "15", "--m", "2", "--listen", "127.0.0.1:0"],
    ] {
        // A regression would start a server that runs until killed.
        let out = output_within(
            std::process::Command::new(crate::support::ddsplit_bin()).args(&command),
            COMMAND_TIMEOUT,
            &format!("ddsplit {}", command.join(" ")),
        );
        assert!(!out.status.success(), "{command:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is not a valid split") && stderr.contains("k + m <= 16"),
            "{stderr}"
        );
    }
}
