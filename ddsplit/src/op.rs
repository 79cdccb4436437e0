//! The operations of the protocol, each defined once: the kind byte of its request frame, its
//! name (in logs and as the `op` label on `/metrics`), the role that serves it, its task kind
//! (`gateway.put`, `node.get`...), its slot in per-operation arrays, and the handler whose stacks
//! the CPU task view charges to that task kind.
//!
//! Everything that names an operation asks [`Op`]; a renamed handler fails the test that
//! checks every task-view rule against the built binary's symbols.

/// One operation of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    PutFragment,
    GetFragment,
    DeleteFragments,
    ListFragments,
    NodeStats,
    Put,
    Get,
    Query,
    Delete,
    ClusterStats,
    Repair,
    RepairScan,
}

/// The server that handles an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Gateway,
    Node,
}

impl Role {
    /// `gateway` or `node`: the `role` label on `/metrics`, the prefix of its task kinds.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Node => "node",
        }
    }

    /// The task kind of the role's connection tasks (frames in and out, waiting for the next).
    pub fn conn_kind(self) -> &'static str {
        match self {
            Role::Gateway => "gateway.conn",
            Role::Node => "node.conn",
        }
    }
}

/// What [`Op`] knows of one operation.
struct OpInfo {
    op: Op,
    request_kind: u8,
    name: &'static str,
    role: Role,
    task_kind: &'static str,
    handler: &'static str,
}

/// How a node's handlers appear in symbols: the `FragmentStore` impl of `LocalStore`.
macro_rules! local_store {
    ($method:literal) => {
        concat!(
            "ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::",
            $method
        )
    };
}

/// Repair is an `impl Gateway` of its own module: `ddsplit::gateway::repair::<impl
/// ddsplit::gateway::Gateway>::repair`.
macro_rules! gateway_repair {
    ($method:literal) => {
        concat!("ddsplit::gateway::Gateway>::", $method)
    };
}

const OPS: [OpInfo; Op::COUNT] = [
    OpInfo {
        op: Op::PutFragment,
        request_kind: 0x01,
        name: "put_fragment",
        role: Role::Node,
        task_kind: "node.put",
        handler: local_store!("put_fragment"),
    },
    OpInfo {
        op: Op::GetFragment,
        request_kind: 0x02,
        name: "get_fragment",
        role: Role::Node,
        task_kind: "node.get",
        handler: local_store!("get_fragment"),
    },
    OpInfo {
        op: Op::DeleteFragments,
        request_kind: 0x03,
        name: "delete_fragments",
        role: Role::Node,
        task_kind: "node.delete",
        handler: local_store!("delete_fragments"),
    },
    OpInfo {
        op: Op::ListFragments,
        request_kind: 0x04,
        name: "list_fragments",
        role: Role::Node,
        task_kind: "node.list",
        handler: local_store!("list_fragments"),
    },
    OpInfo {
        op: Op::NodeStats,
        request_kind: 0x05,
        name: "node_stats",
        role: Role::Node,
        task_kind: "node.stats",
        handler: local_store!("stats"),
    },
    OpInfo {
        op: Op::Put,
        request_kind: 0x11,
        name: "put",
        role: Role::Gateway,
        task_kind: "gateway.put",
        handler: "ddsplit::gateway::Gateway::put",
    },
    OpInfo {
        op: Op::Get,
        request_kind: 0x12,
        name: "get",
        role: Role::Gateway,
        task_kind: "gateway.get",
        handler: "ddsplit::gateway::Gateway::get",
    },
    OpInfo {
        op: Op::Query,
        request_kind: 0x13,
        name: "query",
        role: Role::Gateway,
        task_kind: "gateway.query",
        handler: "ddsplit::gateway::Gateway::query",
    },
    OpInfo {
        op: Op::Delete,
        request_kind: 0x14,
        name: "delete",
        role: Role::Gateway,
        task_kind: "gateway.delete",
        handler: "ddsplit::gateway::Gateway::delete",
    },
    OpInfo {
        op: Op::ClusterStats,
        request_kind: 0x15,
        name: "cluster_stats",
        role: Role::Gateway,
        task_kind: "gateway.stats",
        handler: "ddsplit::gateway::Gateway::stats",
    },
    OpInfo {
        op: Op::Repair,
        request_kind: 0x16,
        name: "repair",
        role: Role::Gateway,
        task_kind: "gateway.repair",
        handler: gateway_repair!("repair"),
    },
    OpInfo {
        op: Op::RepairScan,
        request_kind: 0x17,
        name: "repair_scan",
        role: Role::Gateway,
        task_kind: "gateway.repair_scan",
        handler: gateway_repair!("repair_scan"),
    },
];

impl Op {
    /// How many operations there are: the length of per-operation arrays.
    pub const COUNT: usize = 12;

    /// Every operation, in slot order.
    pub const ALL: [Op; Op::COUNT] = [
        Op::PutFragment,
        Op::GetFragment,
        Op::DeleteFragments,
        Op::ListFragments,
        Op::NodeStats,
        Op::Put,
        Op::Get,
        Op::Query,
        Op::Delete,
        Op::ClusterStats,
        Op::Repair,
        Op::RepairScan,
    ];

    const fn info(self) -> &'static OpInfo {
        &OPS[self.slot()]
    }

    /// The operation's index in per-operation arrays (`0..Op::COUNT`).
    pub const fn slot(self) -> usize {
        self as usize
    }

    /// The kind byte of its request frame.
    pub const fn request_kind(self) -> u8 {
        self.info().request_kind
    }

    /// The operation whose request frames carry kind byte `kind`.
    pub fn from_request_kind(kind: u8) -> Option<Op> {
        OPS.iter().find(|i| i.request_kind == kind).map(|i| i.op)
    }

    /// A short name (`put_fragment`), for logs and the `op` label on `/metrics`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The server that handles it.
    pub fn role(self) -> Role {
        self.info().role
    }

    /// The task kind its handler runs in (`node.put`).
    pub fn task_kind(self) -> &'static str {
        self.info().task_kind
    }

    /// The start of its handler's symbol (after any `<impl ` prefix): the CPU task view charges
    /// the stacks through it to [`Op::task_kind`].
    pub fn handler(self) -> &'static str {
        self.info().handler
    }

    /// The operations `role` serves.
    pub fn of(role: Role) -> impl Iterator<Item = Op> {
        Op::ALL.into_iter().filter(move |op| op.role() == role)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_operation_is_described_in_its_own_slot() {
        for (slot, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op.slot(), slot);
            assert_eq!(OPS[slot].op, op, "OPS is in slot order");
        }
    }

    #[test]
    fn names_kinds_and_task_kinds_are_distinct() {
        let distinct = |f: fn(Op) -> String| Op::ALL.into_iter().map(f).collect::<HashSet<_>>();
        assert_eq!(distinct(|op| op.name().into()).len(), Op::COUNT);
        assert_eq!(
            distinct(|op| op.request_kind().to_string()).len(),
            Op::COUNT
        );
        assert_eq!(distinct(|op| op.task_kind().into()).len(), Op::COUNT);
    }

    #[test]
    fn request_kinds_read_back_and_unknown_ones_do_not() {
        for op in Op::ALL {
            assert_eq!(Op::from_request_kind(op.request_kind()), Some(op));
        }
        // Response kinds have the high bit set; 0 is no kind at all.
        assert_eq!(Op::from_request_kind(0x81), None);
        assert_eq!(Op::from_request_kind(0), None);
    }

    #[test]
    fn task_kinds_are_prefixed_by_their_role() {
        for op in Op::ALL {
            let role = op.role().name();
            assert!(op.task_kind().starts_with(&format!("{role}.")), "{op:?}");
        }
        assert_eq!(
            Op::of(Role::Node).count() + Op::of(Role::Gateway).count(),
            Op::COUNT
        );
    }
}
