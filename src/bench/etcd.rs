//! A 3-node etcd on loopback, for `synod bench --against etcd`, and a client of
//! its native gRPC API (what etcd's users run), not the JSON gateway. It
//! installs nothing: if `etcd` is missing, it says how to get it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BenchError, KvClient};

/// A running etcd cluster that this process started.
pub struct Etcd {
    /// Client URLs' addresses.
    pub clients: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Etcd {
    /// The process ids, for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Stop every member (by pid) and wait for them.
    pub fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where `etcd` is, or how to install it.
pub fn find() -> Result<PathBuf, BenchError> {
    super::find_program("etcd", "etcd-server")
}

/// Start a 3-node etcd in `dir` on free loopback ports; wait until it serves.
pub fn start(dir: &Path) -> Result<Etcd, BenchError> {
    let bin = find()?;
    // All six at once: ports taken one at a time could repeat.
    let ports = crate::harness::free_ports(6);
    let (peers, clients) = ports.split_at(3);
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{i}=http://127.0.0.1:{p}"))
        .collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let data = dir.join(format!("e{i}"));
        let log = std::fs::File::create(dir.join(format!("e{i}.log")))?;
        let child = Command::new(&bin)
            .arg("--name")
            .arg(format!("e{i}"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", clients[i]))
            .arg("--advertise-client-urls")
            .arg(format!("http://127.0.0.1:{}", clients[i]))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", peers[i]))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", peers[i]))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("synod-bench")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Start {
                program: bin.clone(),
                source,
            })?;
        children.push(child);
    }
    let etcd = Etcd {
        clients: clients
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect(),
        children,
    };
    let waited = Duration::from_secs(20);
    let deadline = Instant::now() + waited;
    'wait: loop {
        for addr in &etcd.clients {
            let mut c = EtcdClient::new(*addr);
            if !c.put("ready", "1") {
                if Instant::now() > deadline {
                    return Err(BenchError::NotServing {
                        program: "etcd",
                        waited,
                        see: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
                continue 'wait;
            }
        }
        break;
    }
    Ok(etcd)
}

/// etcd's v3 messages this client sends and reads, as `etcdserverpb` in
/// etcd's `rpc.proto` and `mvccpb` in `kv.proto` define them (same field
/// numbers; fields the benchmark never sets are left out, and prost skips
/// unknown fields in replies). Written by hand rather than generated, so the
/// build needs no `protoc`.
mod pb {
    /// `etcdserverpb.PutRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// `etcdserverpb.ResponseHeader`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        #[prost(int64, tag = "3")]
        pub revision: i64,
        #[prost(uint64, tag = "4")]
        pub raft_term: u64,
    }

    /// `etcdserverpb.PutResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    /// `etcdserverpb.RangeRequest`: one key, linearizable (not serializable).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bool, tag = "7")]
        pub serializable: bool,
    }

    /// `mvccpb.KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(int64, tag = "3")]
        pub mod_revision: i64,
        #[prost(bytes = "vec", tag = "5")]
        pub value: Vec<u8>,
    }

    /// `etcdserverpb.RangeResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, repeated, tag = "2")]
        pub kvs: Vec<KeyValue>,
        #[prost(int64, tag = "4")]
        pub count: i64,
    }
}

/// A client of etcd's native gRPC API (the `KV` service: Put and Range, as
/// etcd's own clients call them), over one HTTP/2 connection of its own,
/// driven by a single-threaded runtime so it fits the benchmark's one
/// blocking client per thread, as synod's own client does.
pub struct EtcdClient {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    grpc: Option<tonic::client::Grpc<tonic::transport::Channel>>,
}

impl EtcdClient {
    /// A client of the member at `addr` (it connects on first use).
    pub fn new(addr: SocketAddr) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a single-threaded runtime");
        EtcdClient {
            addr,
            rt,
            grpc: None,
        }
    }

    /// One unary call to `/etcdserverpb.KV/{method}`; `None` if it failed
    /// (the connection is then made afresh next time).
    fn call<Q, R>(&mut self, method: &'static str, req: Q) -> Option<R>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let addr = self.addr;
        let slot = &mut self.grpc;
        let out = self.rt.block_on(async move {
            if slot.is_none() {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .ok()?
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .ok()?;
                *slot = Some(tonic::client::Grpc::new(channel));
            }
            let grpc = slot.as_mut()?;
            grpc.ready().await.ok()?;
            let path = http::uri::PathAndQuery::from_static(method);
            grpc.unary(
                tonic::Request::new(req),
                path,
                tonic_prost::ProstCodec::<Q, R>::default(),
            )
            .await
            .ok()
            .map(tonic::Response::into_inner)
        });
        if out.is_none() {
            self.grpc = None;
        }
        out
    }
}

impl KvClient for EtcdClient {
    fn put(&mut self, key: &str, value: &str) -> bool {
        let req = pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        };
        self.call::<_, pb::PutResponse>("/etcdserverpb.KV/Put", req)
            .is_some_and(|r| r.header.is_some())
    }

    fn get(&mut self, key: &str) -> bool {
        let req = pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable: false,
        };
        self.call::<_, pb::RangeResponse>("/etcdserverpb.KV/Range", req)
            .is_some_and(|r| r.header.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::pb;
    use prost::Message;

    /// The bytes etcd's own client sends for Put("k", "v") and Range("k"):
    /// field 1 (key) and 2 (value) as length-delimited bytes.
    #[test]
    fn messages_encode_as_etcds_protobuf() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        assert_eq!(put.encode_to_vec(), vec![0x0a, 1, b'k', 0x12, 1, b'v']);
        let range = pb::RangeRequest {
            key: b"k".to_vec(),
            serializable: false,
        };
        assert_eq!(range.encode_to_vec(), vec![0x0a, 1, b'k']);
        // A reply with fields this client does not know still decodes.
        let reply = [
            0x0a, 2, 0x18, 7, 0x12, 5, 0x0a, 1, b'k', 0x2a, 0, 0x18, 1, 0x20, 1,
        ];
        let r = pb::RangeResponse::decode(&reply[..]).unwrap();
        assert_eq!(r.header.unwrap().revision, 7);
        assert_eq!(r.kvs[0].key, b"k");
        assert_eq!(r.count, 1);
    }
}
