//! Client histories: what each operation asked, when it started and ended, and how
//! it ended. The simulator and `synod chaos` record them; the checkers read them.

use serde::{Deserialize, Serialize};

use crate::kv::{Op, OpResult};

/// How an operation ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "result")]
pub enum Status {
    /// Acknowledged with this result.
    Ok(OpResult),
    /// Certainly not applied (every node refused it before proposing anything).
    Failed,
    /// Maybe applied, maybe not (timed out after it may have been proposed).
    Unknown,
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Index in the history.
    pub id: usize,
    /// The client that issued it.
    pub client: u64,
    /// The client's sequence number for it.
    pub seq: u64,
    /// What it asked.
    pub op: Op,
    /// When it was invoked (the recorder's time unit: virtual ms in the simulator,
    /// µs since the start in chaos runs).
    pub invoke: u64,
    /// When it completed; `None` while pending.
    pub complete: Option<u64>,
    /// How it ended.
    pub status: Status,
}

impl Operation {
    /// True if it changes the map (or would, had it succeeded).
    pub fn is_write(&self) -> bool {
        !self.op.is_read()
    }
}

/// Every operation of a run, in invocation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The operations.
    pub ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Record an invocation; returns its id for [`History::complete`].
    pub fn invoke(&mut self, client: u64, seq: u64, op: Op, at: u64) -> usize {
        let id = self.ops.len();
        self.ops.push(Operation {
            id,
            client,
            seq,
            op,
            invoke: at,
            complete: None,
            status: Status::Unknown,
        });
        id
    }

    /// Record how operation `id` ended.
    pub fn complete(&mut self, id: usize, at: u64, status: Status) {
        let op = &mut self.ops[id];
        op.complete = Some(at);
        op.status = status;
    }

    /// Count of operations with each status: (ok, failed, unknown).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.ops
            .iter()
            .fold((0, 0, 0), |(o, f, u), op| match op.status {
                Status::Ok(_) => (o + 1, f, u),
                Status::Failed => (o, f + 1, u),
                Status::Unknown => (o, f, u + 1),
            })
    }
}
