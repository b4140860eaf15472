//! A 3-node etcd on loopback, for `synod bench --against etcd`, and a client for
//! its v3 JSON gateway over HTTP/1.1 keep-alive (base64 keys and values). It
//! installs nothing: if `etcd` is missing, it says how to get it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::KvClient;

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
pub fn find() -> Result<PathBuf, String> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("etcd");
        if p.is_file() {
            return Ok(p);
        }
    }
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    Err("etcd is not installed; on Debian or Ubuntu: `apt-get install etcd-server` (synod installs nothing by itself)".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Start a 3-node etcd in `dir` on free loopback ports; wait until it serves.
pub fn start(dir: &Path) -> Result<Etcd, String> {
    let bin = find()?;
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{i}=http://127.0.0.1:{p}"))
        .collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let data = dir.join(format!("e{i}"));
        let log =
            std::fs::File::create(dir.join(format!("e{i}.log"))).map_err(|e| e.to_string())?;
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
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        children.push(child);
    }
    let etcd = Etcd {
        clients: clients
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect(),
        children,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    'wait: loop {
        for addr in &etcd.clients {
            let mut c = EtcdClient::new(*addr);
            if !c.put("ready", "1") {
                if Instant::now() > deadline {
                    return Err(format!(
                        "etcd did not serve within 20 s; see {}",
                        dir.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue 'wait;
            }
        }
        break;
    }
    Ok(etcd)
}

/// A client of etcd's v3 JSON gateway, over one keep-alive connection.
pub struct EtcdClient {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl EtcdClient {
    /// A client of the member at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        EtcdClient { addr, conn: None }
    }

    fn post(&mut self, path: &str, body: &str) -> bool {
        for _ in 0..2 {
            if self.conn.is_none() {
                let Ok(s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) else {
                    return false;
                };
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                self.conn = Some(BufReader::new(s));
            }
            match self.exchange(path, body) {
                Some(ok) => return ok,
                None => self.conn = None, // the connection broke: once more on a new one
            }
        }
        false
    }

    /// One request and response; `None` if the connection failed.
    fn exchange(&mut self, path: &str, body: &str) -> Option<bool> {
        let conn = self.conn.as_mut()?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.get_mut().write_all(req.as_bytes()).ok()?;
        let mut status = String::new();
        conn.read_line(&mut status).ok()?;
        let code: u16 = status.split_whitespace().nth(1)?.parse().ok()?;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().ok()?;
                }
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body).ok()?;
        Some(code == 200)
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl KvClient for EtcdClient {
    fn put(&mut self, key: &str, value: &str) -> bool {
        let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", b64(key), b64(value));
        self.post("/v3/kv/put", &body)
    }

    fn get(&mut self, key: &str) -> bool {
        let body = format!("{{\"key\":\"{}\"}}", b64(key));
        self.post("/v3/kv/range", &body)
    }
}
