//! A single Redis on loopback with `appendfsync always`, for `synod bench
//! --against redis`: the durable single-node reference, so one row shows what
//! replication costs. It installs nothing: if `redis-server` is missing, it
//! says how to get it. Driven by the same RESP client as `bench --redis`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BenchError, KvClient};
use crate::resp::client::RespKv;

/// A running redis-server that this process started.
pub struct Redis {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

impl Redis {
    /// Its process id, for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.child.id()]
    }

    /// A client of it.
    pub fn client(addr: SocketAddr) -> Box<dyn KvClient> {
        Box::new(RespKv::new(vec![addr], 0, Duration::from_secs(6)))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `redis-server` is, or how to install it.
pub fn find() -> Result<PathBuf, BenchError> {
    super::find_program("redis-server", "redis-server")
}

/// Start redis-server in `dir` on a free loopback port, every write in its
/// append-only file synced before the reply (`appendfsync always`), no RDB
/// snapshots; wait until it answers.
pub fn start(dir: &Path) -> Result<Redis, BenchError> {
    let bin = find()?;
    let port = crate::harness::free_ports(1)[0];
    let data = dir.join("redis");
    std::fs::create_dir_all(&data)?;
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(&data)
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Start {
            program: bin.clone(),
            source,
        })?;
    let redis = Redis {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        child,
    };
    let waited = Duration::from_secs(10);
    let deadline = Instant::now() + waited;
    let mut c = Redis::client(redis.addr);
    while !c.put("ready", "1") {
        if Instant::now() > deadline {
            return Err(BenchError::NotServing {
                program: "redis-server",
                waited,
                see: dir.join("redis.log"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
        c = Redis::client(redis.addr);
    }
    Ok(redis)
}
