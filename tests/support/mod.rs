//! Helpers for tests that run real `synod` processes: a temporary directory,
//! free loopback ports, and a guard that kills every process the test started,
//! by pid, even when the test fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use synod::cluster::Cluster;

/// Run the `synod` binary with `args` (in the current directory).
pub fn synod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("run synod")
}

/// What a run printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `n` loopback ports that were free a moment ago (the library's one helper).
pub use synod::harness::free_ports;

/// A cluster of `n` nodes on free loopback ports, with quick timings
/// (heartbeat 20 ms, election timeout 100..200 ms).
pub fn cluster(name: &str, n: usize) -> Cluster {
    synod::harness::loopback_cluster(name, n, 20, (100, 200))
}

/// A test's own directory, with its cluster; stops every node on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    pub name: String,
}

impl Env {
    /// A fresh directory with a cluster file for `n` nodes.
    pub fn new(name: &str, n: usize) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(format!("{name}.ron"));
        std::fs::write(&file, cluster(name, n).to_ron()).expect("write cluster file");
        Env {
            dir,
            file,
            name: name.to_string(),
        }
    }

    /// The cluster file, as a value.
    pub fn planned(&self) -> Cluster {
        Cluster::load(&self.file).expect("the cluster file")
    }

    /// Change the cluster file with `change` (it is written even if the
    /// result is not a valid cluster: tests of refusals want that).
    pub fn edit(&self, change: impl FnOnce(&mut Cluster)) {
        let mut c = self.planned();
        change(&mut c);
        std::fs::write(&self.file, c.to_ron()).expect("write cluster file");
    }

    /// Give every node of the cluster file a RESP port on a free loopback
    /// port; the ports, by node.
    pub fn with_redis(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        self.edit(|c| {
            ports = free_ports(c.nodes.len());
            for (n, p) in c.nodes.iter_mut().zip(&ports) {
                n.redis_addr = Some(([127, 0, 0, 1], *p).into());
            }
        });
        ports
    }

    /// Run `synod ARGS` in this directory.
    pub fn synod(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run synod")
    }

    /// `synod chaos FILE ARGS` on this environment's cluster file: its exit
    /// code and everything it printed.
    pub fn chaos(&self, args: &[&str]) -> (Option<i32>, String) {
        let file = self.file.to_string_lossy().into_owned();
        let all: Vec<&str> = ["chaos", file.as_str()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let o = self.synod(&all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    }

    /// Run `synod ARGS` with `input` on its standard input.
    pub fn synod_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run synod");
        let mut stdin = child.stdin.take().expect("stdin");
        // synod may stop reading early (past the limit): a broken pipe is fine.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("wait for synod")
    }

    /// Run `synod ARGS` with extra environment variables.
    pub fn synod_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(args)
            .envs(vars.iter().copied())
            .current_dir(self.dir.path())
            .output()
            .expect("run synod")
    }

    /// The output node `id` wrote so far.
    pub fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.run_dir().join(format!("node-{id}.log"))).unwrap_or_default()
    }

    /// Wait up to `secs` for `cond`; false if it never held.
    pub fn wait_for(&self, secs: f64, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if cond() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `synod ARGS` and expect exit 0; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.succeeds(args).stdout).into_owned()
    }

    fn succeeds(&self, args: &[&str]) -> Output {
        let o = self.synod(args);
        assert!(
            o.status.success(),
            "synod {args:?} failed ({:?}):\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Run synod, which must succeed; its standard error (what commands
    /// that report progress say).
    pub fn ok_err(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.succeeds(args).stderr).into_owned()
    }

    /// `synod up FILE --detach`.
    pub fn up(&self) -> String {
        let file = self.file.to_string_lossy().into_owned();
        self.ok(&["up", &file, "--detach"])
    }

    /// The run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join(".synod").join(&self.name)
    }

    /// The cluster as the running nodes have it, with its secret.
    pub fn cluster(&self) -> synod::cluster::Cluster {
        synod::cluster::rundir::RunDir::new(&self.dir.path().join(".synod"), &self.name)
            .cluster()
            .expect("the cluster is up")
    }

    /// Every pid recorded in the state file.
    pub fn pids(&self) -> Vec<u32> {
        let Ok(text) = std::fs::read_to_string(self.run_dir().join("state.json")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["nodes"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|n| n["pid"].as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `synod status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }

    /// True if every node of `status --json` output is in `state`.
    pub fn all_nodes(st: &serde_json::Value, state: &str) -> bool {
        st["nodes"]
            .as_array()
            .is_some_and(|ns| ns.iter().all(|n| n["state"] == state))
    }

    /// The id of the node that leads, waiting up to `secs` for one.
    pub fn leader(&self, secs: f64) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let st = self.status();
            if let Some(n) = st["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["role"] == "leader")
            {
                return n["id"].as_u64().unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "no leader: {st}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The path of a file in this directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// This directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let pids = self.pids();
        let _ = self.synod(&["down"]);
        // Whatever `down` missed (a test that failed half-way): SIGKILL by pid,
        // only the pids this test's cluster recorded.
        for pid in pids {
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&cmd)
                    .contains(&self.run_dir().to_string_lossy().to_string())
                {
                    // SAFETY: a pid this test started, checked just above.
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// `synod web` on a free port; its URL (with the token) and the process.
pub struct Web {
    pub child: Child,
    pub port: u16,
    pub token: String,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn web(env: &Env) -> Web {
    web_with(env, &[])
}

/// `synod web ARGS` on a free port (a replay's URL has no token: "").
pub fn web_with(env: &Env, args: &[&str]) -> Web {
    let port = free_ports(1)[0];
    let mut child = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["web", "--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start synod web");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the URL line");
    assert!(line.starts_with("synod web: http://"), "{line:?}");
    let token = line
        .trim()
        .rsplit_once("token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let w = Web { child, port, token };
    assert!(env.wait_for(10.0, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    w
}

/// One HTTP/1.1 request; the status code and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    request(
        port,
        &format!("127.0.0.1:{port}"),
        method,
        path,
        headers,
        body,
    )
}

/// The same, naming `host` in the Host header (another site's name, say).
pub fn http_host(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    request(port, host, method, path, headers, "")
}

fn request(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().expect("a status code");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}
