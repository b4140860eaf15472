//! The wire: frames, the handshake and every message that crosses TCP.
//!
//! A frame is a 4-byte big-endian length and then a postcard payload (DESIGN.md
//! §4). The first frame of every connection is a [`Hello`]: magic, protocol
//! version, cluster name and who is calling. A connection from another cluster or
//! version, a frame above [`MAX_FRAME`], or bytes that do not decode are dropped
//! with a log line, and the node keeps serving.

pub mod faults;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::kv::Op;
use crate::paxos::{Ballot, Envelope, NodeId, Outcome, Slot, Value};
pub use faults::NetFaults;

/// "SYND".
pub const MAGIC: u32 = 0x5359_4E44;
/// Bumped whenever a wire type changes.
pub const PROTOCOL: u16 = 1;
/// The largest frame a node reads or writes.
pub const MAX_FRAME: usize = 32 << 20;

/// Who opened a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// Another node of the cluster, which will send [`PeerFrame`]s.
    Node(NodeId),
    /// A client or the launcher, which will send [`Request`]s.
    Client,
}

/// The first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: u32,
    /// Always [`PROTOCOL`] for this build.
    pub version: u16,
    /// The cluster the caller belongs to.
    pub cluster: String,
    /// Who is calling.
    pub caller: Caller,
}

impl Hello {
    /// The hello of this build.
    pub fn new(cluster: &str, caller: Caller) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL,
            cluster: cluster.to_string(),
            caller,
        }
    }

    /// Why a node refuses this hello, if it does.
    pub fn refusal(&self, cluster: &str) -> Option<String> {
        if self.magic != MAGIC {
            Some(format!("bad magic {:#x}", self.magic))
        } else if self.version != PROTOCOL {
            Some(format!(
                "protocol version {} (this node speaks {PROTOCOL})",
                self.version
            ))
        } else if self.cluster != cluster {
            Some(format!(
                "cluster {:?} (this node is in {cluster:?})",
                self.cluster
            ))
        } else {
            None
        }
    }
}

/// Protocol messages between two nodes, batched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFrame(pub Vec<Envelope>);

/// What a client (or the launcher) asks a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Run a key-value operation through the log.
    Op { client: u64, seq: u64, op: Op },
    /// This node's state.
    Status,
    /// Chosen slots from `from` on, at most `limit`.
    Log { from: Slot, limit: usize },
    /// Replace this node's outbound message faults.
    SetFaults(NetFaults),
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Sent once after a client's hello: who answered.
    Welcome { node: NodeId },
    /// What happened to operation `(client, seq)`.
    Op {
        client: u64,
        seq: u64,
        outcome: Outcome,
    },
    /// The node's state.
    Status(NodeStatus),
    /// Chosen slots, and the first slot this node does not know chosen.
    Log {
        entries: Vec<(Slot, Value)>,
        first_unchosen: Slot,
    },
    /// Done.
    Ok,
    /// The request was refused.
    Error(String),
}

/// One node's state, as `synod status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its id.
    pub id: NodeId,
    /// "leader", "follower" or "candidate".
    pub role: String,
    /// The highest ballot its acceptor promised.
    pub promised: Ballot,
    /// The ballot of its own latest attempt to lead.
    pub ballot: Ballot,
    /// Who it believes leads.
    pub leader: Option<NodeId>,
    /// The first slot it does not know chosen (slots below are chosen).
    pub chosen: Slot,
    /// The next slot its replica applies (slots below are applied).
    pub applied: Slot,
    /// Its current message faults.
    pub faults: NetFaults,
    /// Records its acceptor synced, and the syncs that took.
    pub records: u64,
    /// fsync calls of its acceptor log.
    pub syncs: u64,
    /// Messages sent to peers.
    pub sent: u64,
}

/// Serialise `msg` as a frame payload (without the length prefix).
pub fn encode<T: Serialize>(msg: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(msg).expect("wire types always serialise"))
}

/// Deserialise a frame payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    postcard::from_bytes(payload).map_err(|e| format!("undecodable frame: {e}"))
}

/// The codec that splits a byte stream into frames.
pub fn codec() -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Append one frame (length prefix and payload) to `buf`.
pub fn put_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
}
