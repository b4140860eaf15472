//! The wire: frames, the handshake and every message that crosses TCP.
//!
//! A frame is a 4-byte big-endian length and then a postcard payload (DESIGN.md
//! §4), at most [`MAX_FRAME`] bytes, on the way out as on the way in. Every
//! connection opens with a handshake ([`auth`]): the node sends a
//! [`Challenge`], the caller answers with a [`Hello`] signed with its key (a
//! node's own, the client key or the administrator's), and the node answers
//! with a [`Welcome`] signed with its own. A caller from another cluster or version, a node id outside the
//! cluster, a wrong proof, a frame above the limit, or bytes that do not decode
//! close that connection with one log line, and the node keeps serving.
//!
//! Between nodes only [`crate::paxos::Message`]s travel, never the notices
//! the roles of one node exchange: those have no serialised form at all.

pub mod auth;
pub mod faults;

use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::kv::Op;
use crate::paxos::{Ballot, Envelope, NodeId, Outcome, Slot, Value};
pub use auth::{Keys, NodeKeys, Nonce, Proof, PublicKey, Roster, Secret};
pub use faults::NetFaults;

/// "SYND".
pub const MAGIC: u32 = 0x5359_4E44;
/// Bumped whenever a wire type changes.
pub const PROTOCOL: u16 = 5;
pub use crate::paxos::{MAX_FRAME, MAX_OP_BYTES};
/// How far back a node's `status` counts client operations and their latency.
pub const CLIENT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// The most log entries one `Request::Log` answer carries.
pub const MAX_LOG_ENTRIES: usize = 10_000;
/// The most bytes of values one `Request::Log` answer carries.
pub const MAX_LOG_BYTES: usize = 8 << 20;

/// Who opened a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// Another node of the cluster, which will send [`PeerFrame`]s.
    Node(NodeId),
    /// A client (a node's RESP front, a program holding the client key),
    /// which will send [`Request`]s other than faults.
    Client,
    /// The administrator (the CLI, the launcher, chaos, bench, web), which
    /// may send every [`Request`].
    Admin,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Node(id) => write!(f, "node {id}"),
            Caller::Client => write!(f, "the client"),
            Caller::Admin => write!(f, "the administrator"),
        }
    }
}

impl Caller {
    fn tag(&self) -> Vec<u8> {
        match self {
            Caller::Node(id) => format!("node {id}").into_bytes(),
            Caller::Client => b"client".to_vec(),
            Caller::Admin => b"admin".to_vec(),
        }
    }

    /// True for callers that send [`Request`]s.
    pub fn is_client(&self) -> bool {
        !matches!(self, Caller::Node(_))
    }
}

/// The node's first frame on every connection it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Always [`MAGIC`].
    pub magic: u32,
    /// Always [`PROTOCOL`] for this build.
    pub version: u16,
    /// The node answering.
    pub node: NodeId,
    /// Fresh for this connection.
    pub nonce: Nonce,
}

impl Challenge {
    /// A fresh challenge from node `node`.
    pub fn new(node: NodeId) -> Self {
        Challenge {
            magic: MAGIC,
            version: PROTOCOL,
            node,
            nonce: auth::nonce(),
        }
    }

    /// Why a caller refuses this challenge, if it does.
    pub fn refusal(&self) -> Option<String> {
        check_version(self.magic, self.version)
    }
}

/// The caller's answer to a [`Challenge`].
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
    /// Fresh for this connection.
    pub nonce: Nonce,
    /// The caller's signature of ("hello", cluster, caller, the node called,
    /// the challenge's nonce, this nonce): bound to the one node that issued
    /// the challenge, so a hello cannot be relayed to another.
    pub proof: Proof,
}

impl Hello {
    /// The hello of this build, answering `challenge`, signed with `keys`.
    pub fn new(cluster: &str, keys: &Keys, challenge: &Challenge) -> Self {
        let nonce = auth::nonce();
        let caller = keys.caller.clone();
        let parts = hello_parts(cluster, &caller, challenge, &nonce);
        let proof = keys.prove(&parts.each_ref().map(Vec::as_slice));
        Hello {
            magic: MAGIC,
            version: PROTOCOL,
            cluster: cluster.to_string(),
            caller,
            nonce,
            proof,
        }
    }

    /// Why a node of `cluster` whose members are `members` refuses this hello
    /// to `challenge`, if it does: checked against the key `roster` holds for
    /// the caller it names.
    pub fn refusal(
        &self,
        cluster: &str,
        members: &[NodeId],
        roster: &Roster,
        challenge: &Challenge,
    ) -> Option<String> {
        if let Some(why) = check_version(self.magic, self.version) {
            return Some(why);
        }
        if self.cluster != cluster {
            return Some(format!(
                "cluster {:?} (this node is in {cluster:?})",
                self.cluster
            ));
        }
        if let Caller::Node(id) = self.caller {
            if !members.contains(&id) || id == challenge.node {
                return Some(format!("node {id} is not a peer of this node"));
            }
        }
        let parts = hello_parts(&self.cluster, &self.caller, challenge, &self.nonce);
        match roster.key(&self.caller) {
            Some(key) if key.verify(&parts.each_ref().map(Vec::as_slice), &self.proof) => None,
            Some(_) => Some(format!("wrong proof of {}'s key", self.caller)),
            None => Some(format!("no key known for {}", self.caller)),
        }
    }
}

/// The node's answer to a good [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The node.
    pub node: NodeId,
    /// Which process of it this is: random per start, so frames meant for an
    /// earlier process are told apart.
    pub incarnation: u64,
    /// The node's signature of ("welcome", cluster, node, incarnation, the
    /// hello's nonce, the challenge's nonce).
    pub proof: Proof,
}

impl Welcome {
    /// Node `node`'s welcome of `hello` on the connection it challenged with
    /// `challenge`.
    pub fn new(
        cluster: &str,
        incarnation: u64,
        keys: &Keys,
        challenge: &Challenge,
        hello: &Hello,
    ) -> Self {
        let node = challenge.node;
        let parts = welcome_parts(cluster, node, incarnation, &hello.nonce, &challenge.nonce);
        Welcome {
            node,
            incarnation,
            proof: keys.prove(&parts.each_ref().map(Vec::as_slice)),
        }
    }

    /// True if this welcome is signed with the key `roster` holds for the
    /// node that issued `challenge`, for the handshake of `hello`.
    pub fn genuine(
        &self,
        cluster: &str,
        roster: &Roster,
        challenge: &Challenge,
        hello: &Hello,
    ) -> bool {
        let parts = welcome_parts(
            cluster,
            self.node,
            self.incarnation,
            &hello.nonce,
            &challenge.nonce,
        );
        self.node == challenge.node
            && roster
                .nodes
                .get(&self.node)
                .is_some_and(|k| k.verify(&parts.each_ref().map(Vec::as_slice), &self.proof))
    }
}

fn hello_parts(
    cluster: &str,
    caller: &Caller,
    challenge: &Challenge,
    hello_nonce: &Nonce,
) -> [Vec<u8>; 6] {
    [
        b"hello".to_vec(),
        cluster.as_bytes().to_vec(),
        caller.tag(),
        challenge.node.to_le_bytes().to_vec(),
        challenge.nonce.to_vec(),
        hello_nonce.to_vec(),
    ]
}

fn welcome_parts(
    cluster: &str,
    node: NodeId,
    incarnation: u64,
    hello_nonce: &Nonce,
    challenge_nonce: &Nonce,
) -> [Vec<u8>; 6] {
    [
        b"welcome".to_vec(),
        cluster.as_bytes().to_vec(),
        node.to_le_bytes().to_vec(),
        incarnation.to_le_bytes().to_vec(),
        hello_nonce.to_vec(),
        challenge_nonce.to_vec(),
    ]
}

fn check_version(magic: u32, version: u16) -> Option<String> {
    if magic != MAGIC {
        Some(format!("bad magic {magic:#x}"))
    } else if version != PROTOCOL {
        Some(format!(
            "protocol version {version} (this build speaks {PROTOCOL})"
        ))
    } else {
        None
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
    /// The messages this node sent (a sample) since event `after`, for
    /// `synod web`'s diagram.
    Messages { after: u64 },
}

/// One message a node sent, as its tap sampled it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgEvent {
    /// Increasing per node process.
    pub seq: u64,
    /// When it left, in microseconds since the Unix epoch (the nodes of one
    /// machine share its clock).
    pub at_us: u64,
    /// Sender and receiver.
    pub from: NodeId,
    pub to: NodeId,
    /// Its kind ("Accept", "Promise", ...).
    pub kind: String,
    /// A short rendering: ballot, slot, value.
    pub brief: String,
    /// Dropped by the fault layer.
    pub dropped: bool,
    /// Copies sent (2 or more: duplicated by the fault layer).
    pub copies: u8,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// What happened to operation `(client, seq)`.
    Op {
        client: u64,
        seq: u64,
        outcome: Outcome,
    },
    /// The node's state.
    Status(Box<NodeStatus>),
    /// Chosen slots, the first slot this node does not know chosen, and the
    /// first it still holds (slots below were compacted into a snapshot).
    Log {
        entries: Vec<(Slot, Value)>,
        first_unchosen: Slot,
        floor: Slot,
    },
    /// Done.
    Ok,
    /// The request was refused.
    Error(String),
    /// Sampled messages, oldest first.
    Messages(Vec<MsgEvent>),
}

/// One node's state, as `synod status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its id.
    pub id: NodeId,
    /// Which process of it answered (random per start).
    pub incarnation: u64,
    /// "leader", "follower", "pre-candidate" or "candidate".
    pub role: String,
    /// The highest ballot its acceptor promised, once that promise is durable.
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
    /// Every slot below this is in its latest durable snapshot (0: none).
    pub snapshot: Slot,
    /// Bytes of its data directory (logs and snapshot).
    pub disk_bytes: u64,
    /// Clients its replica remembers.
    pub sessions: u64,
    /// A digest of the sequence its replica applied (equal digests at equal
    /// `applied`: the same state).
    pub digest: u64,
    /// Client operations its connections answered in the last [`CLIENT_WINDOW`].
    pub client_ops: u64,
    /// Their median time from request to answer, µs.
    pub client_p50_us: u64,
    /// Their 99th percentile, µs.
    pub client_p99_us: u64,
    /// Slots its learner saw chosen with a second, different value (only
    /// possible with a rule broken): how many, and the first few as (slot,
    /// the value it kept, the other).
    pub conflicts: u64,
    /// The first conflicts, at most [`CONFLICTS_SHOWN`].
    pub first_conflicts: Vec<(Slot, String, String)>,
    /// The number of the configuration of its first unchosen slot.
    pub config: u64,
    /// That configuration's voters.
    pub voters: Vec<NodeId>,
    /// Its learners (they receive the log and vote in nothing).
    pub learners: Vec<NodeId>,
    /// A change chosen and not yet in force: its number, the slot it
    /// governs from, and its voters.
    pub next_config: Option<(u64, Slot, Vec<NodeId>)>,
}

/// Conflicts a status answer names at most.
pub const CONFLICTS_SHOWN: usize = 4;

/// Serialise `msg` as a frame payload (without the length prefix).
///
/// # Panics
/// Never for synod's wire types, which always serialise.
pub fn encode<T: Serialize>(msg: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(msg).expect("wire types always serialise"))
}

/// Deserialise a frame payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    postcard::from_bytes(payload).map_err(|e| format!("undecodable frame: {e}"))
}

/// The codec that splits a byte stream into frames.
pub fn codec() -> tokio_util::codec::LengthDelimitedCodec {
    codec_limited(MAX_FRAME)
}

/// The same codec with a smaller frame limit (before a handshake).
pub fn codec_limited(max: usize) -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max)
        .new_codec()
}

/// Append one frame (length prefix and payload) to `buf`, with the same codec
/// that reads frames: a payload above [`MAX_FRAME`] is refused, not sent.
pub fn put_frame(buf: &mut BytesMut, payload: Bytes) -> std::io::Result<()> {
    use tokio_util::codec::Encoder;
    codec().encode(payload, buf)
}

/// A blocking stream of frames (the CLI's and the benchmark's side of a
/// connection), split and joined by the same codec the nodes use.
pub struct FrameStream<S> {
    inner: S,
    codec: tokio_util::codec::LengthDelimitedCodec,
    buf: BytesMut,
}

impl<S: std::io::Read + std::io::Write> FrameStream<S> {
    /// Frames over `inner`.
    pub fn new(inner: S) -> Self {
        FrameStream {
            inner,
            codec: codec(),
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Write one frame.
    pub fn send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(payload.len() + 4);
        put_frame(&mut out, Bytes::copy_from_slice(payload))?;
        self.inner.write_all(&out)
    }

    /// Read one frame (blocking, within the stream's read timeout).
    pub fn recv(&mut self) -> std::io::Result<BytesMut> {
        use tokio_util::codec::Decoder;
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(frame);
            }
            let mut chunk = [0u8; 8 * 1024];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Message;

    #[test]
    fn a_hello_answers_one_node_and_cannot_be_relayed_to_another() {
        let secret = Secret::from_bytes([3; 32]);
        let members = [1, 2, 3];
        let roster = secret.roster("c", &members);
        let one = secret.node_keys("c", &members, 1).node;
        let two = secret.node_keys("c", &members, 2).node;
        // Node 2 challenges a stranger, who relays the nonce to node 1 as if
        // it came from node 3 (whose port the stranger holds).
        let at_two = Challenge::new(2);
        let relayed = Challenge {
            node: 3,
            ..at_two.clone()
        };
        let hello = Hello::new("c", &one, &relayed);
        assert!(hello.refusal("c", &members, &roster, &at_two).is_some());
        // Answered to node 2's own challenge, it passes.
        let hello = Hello::new("c", &one, &at_two);
        assert_eq!(hello.refusal("c", &members, &roster, &at_two), None);
        // And a welcome checks out only for the handshake it answers, signed
        // by the node that challenged.
        let w = Welcome::new("c", 99, &two, &at_two, &hello);
        assert!(w.genuine("c", &roster, &at_two, &hello));
        let other = Secret::from_bytes([4; 32]).roster("c", &members);
        assert!(!w.genuine("c", &other, &at_two, &hello));
        assert!(!w.genuine("c", &roster, &relayed, &hello));
        let w = Welcome::new("c", 99, &one, &at_two, &hello);
        assert!(
            !w.genuine("c", &roster, &at_two, &hello),
            "node 1 signing as 2"
        );
    }

    #[test]
    fn one_nodes_key_poses_neither_as_another_node_nor_as_the_administrator() {
        let secret = Secret::from_bytes([3; 32]);
        let members = [1, 2, 3];
        let roster = secret.roster("c", &members);
        let at_three = Challenge::new(3);
        let mut one = secret.node_keys("c", &members, 1);
        assert_eq!(
            Hello::new("c", &one.node, &at_three).refusal("c", &members, &roster, &at_three),
            None
        );
        // Node 1's key, naming node 2, or the administrator, or a client.
        for posing in [Caller::Node(2), Caller::Admin] {
            one.node.caller = posing.clone();
            let hello = Hello::new("c", &one.node, &at_three);
            let why = hello.refusal("c", &members, &roster, &at_three).unwrap();
            assert!(why.contains("wrong proof"), "{posing:?}: {why}");
        }
        // And the client key every node holds is no administrator's.
        one.client.caller = Caller::Admin;
        let hello = Hello::new("c", &one.client, &at_three);
        assert!(hello.refusal("c", &members, &roster, &at_three).is_some());
    }

    #[test]
    fn a_slice_of_envelopes_encodes_as_their_peer_frame() {
        let envs = vec![Envelope {
            from: 1,
            to: 2,
            msg: Message::CatchUp { from_slot: 7 },
        }];
        assert_eq!(encode(&envs.as_slice()), encode(&PeerFrame(envs.clone())));
    }
}
