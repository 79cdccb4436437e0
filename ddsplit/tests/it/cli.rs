//! The `ddsplit put/get/query/delete` commands against a cluster of processes.

use crate::support::{Cluster, record, run_cli};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn put_get_query_delete_from_the_command_line() {
    let mut cluster = Cluster::start(6, &[]);
    let data = record(5, 200_000);
    let out = cluster.cli(&["put"], Some(&data));
    assert!(out.status.success(), "put failed: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 32, "put prints the new id: {id:?}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.bin");
    std::fs::write(&path, b"from a file").unwrap();
    let out = cluster.cli(&["put", path.to_str().unwrap()], None);
    assert!(out.status.success());
    let file_id = text(&out.stdout).trim().to_string();

    let out = cluster.cli(&["get", &id], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout == data, "get writes the record to stdout");
    let copy = dir.path().join("out.bin");
    let out = cluster.cli(&["get", &file_id, "-o", copy.to_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&copy).unwrap(), b"from a file");

    let out = cluster.cli(&["query", &format!("{file_id}:5-9"), &id], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(lines.contains(&format!("{file_id} 4 bytes")), "{lines}");
    assert!(lines.contains(&format!("{id} 200000 bytes")), "{lines}");

    let missing = "0000000000000000000000000000abcd";
    let out = cluster.cli(&["get", missing], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("record {missing} not found")),
        "{}",
        text(&out.stderr)
    );

    let out = cluster.cli(&["get", "not-an-id"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not 32 hexadecimal digits"),
        "{}",
        text(&out.stderr)
    );

    let out = cluster.cli(&["put"], Some(b""));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));

    let out = cluster.cli(&["delete", &file_id], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!cluster.cli(&["get", &file_id], None).status.success());

    // Fewer than k nodes' fragments: a clear message and a failing exit code.
    for i in 0..3 {
        cluster.nodes[i].kill9();
    }
    let out = cluster.cli(&["get", &id], None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fewer than k fragments could be read"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no partial data on stdout");
}

#[test]
fn an_unreachable_gateway_is_explained() {
    let addr = crate::support::free_addr();
    let out = run_cli(addr, &["get", "0000000000000000000000000000abcd"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach the gateway"),
        "{}",
        text(&out.stderr)
    );
}
