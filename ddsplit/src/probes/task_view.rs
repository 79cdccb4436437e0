//! How DDSplit's stacks map to task kinds in the async-aware CPU view.

use diag::cpu::TaskView;

use crate::op::Op;

/// The order in which handlers are matched: a handler that calls another comes first (a query
/// reads records with `get`), and so does a name that another starts with (`repair_scan`
/// before `repair`).
const HANDLER_RULE_ORDER: [Op; Op::COUNT] = [
    Op::RepairScan,
    Op::Repair,
    Op::Query,
    Op::Put,
    Op::Get,
    Op::Delete,
    Op::ClusterStats,
    Op::PutFragment,
    Op::GetFragment,
    Op::DeleteFragments,
    Op::ListFragments,
    Op::NodeStats,
];

/// How DDSplit's stacks map to task kinds in the async-aware CPU view (the same kinds as the
/// task monitors: `gateway.put`, `node.get`...). The first rule naming a frame decides: a
/// gateway query, which reads records, is `gateway.query` before it is `gateway.get`, and the
/// connection's own work (frames in and out) is what is left once no handler is on the stack.
pub fn task_view() -> TaskView {
    HANDLER_RULE_ORDER
        .into_iter()
        .fold(TaskView::new(["ddsplit"]), |view, op| {
            view.rule(op.handler(), op.task_kind())
        })
        // The log's blocking reads run on the blocking pool, outside the store's future.
        .rule("ddsplit::store::log::FragmentLog::get", "node.get")
        .rule("ddsplit::store::log::write_loop", "node.log_writer")
        .rule("ddsplit::load::Worker::put", "load.put")
        .rule("ddsplit::load::Worker::get", "load.get")
        .rule("ddsplit::load::Worker::query", "load.query")
        .rule("ddsplit::load::", "load")
        .rule("ddsplit::admin::", "admin")
        // Reading, decoding, encoding and writing frames, before and after a handler runs.
        .rule("ddsplit::server::", "server.connection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_has_a_rule() {
        for op in Op::ALL {
            assert_eq!(
                HANDLER_RULE_ORDER.iter().filter(|&&o| o == op).count(),
                1,
                "{op:?}"
            );
        }
    }

    #[test]
    fn ddsplit_stacks_are_rooted_at_task_kinds() {
        let view = task_view();
        let frame = |f: &str| diag::cpu::Frame {
            function: f.into(),
            file: None,
            line: None,
        };
        let stack = |fs: &[&str]| diag::cpu::Stack {
            thread: "ddsplit-worker".into(),
            frames: fs.iter().map(|f| frame(f)).collect(),
            samples: 1,
        };
        let runtime = "tokio::runtime::task::harness::Harness<T,S>::poll";
        let conn = "ddsplit::server::Connection<H>::run::{{closure}}";
        let kind = |fs: &[&str]| {
            view.folded(&[stack(fs)])
                .split(';')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::gateway::GatewayHandler as ddsplit::server::Handler>::handle::{{closure}}",
                "ddsplit::gateway::Gateway::query::{{closure}}",
                "ddsplit::gateway::Gateway::get::{{closure}}",
            ]),
            "gateway.query"
        );
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::put_fragment::{{closure}}",
            ]),
            "node.put"
        );
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::gateway::GatewayHandler as ddsplit::server::Handler>::handle::{{closure}}",
                "ddsplit::gateway::Gateway::put::{{closure}}",
                "ddsplit::codec::split",
            ]),
            "gateway.put"
        );
        assert_eq!(
            kind(&[runtime, conn, "ddsplit::wire::Request::decode"]),
            "server.connection"
        );
        assert_eq!(
            kind(&["ddsplit::store::log::write_loop", "fdatasync"]),
            "node.log_writer"
        );
    }
}
