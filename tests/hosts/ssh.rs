//! (A module of `tests/netns.rs`, which needs the same root and
//! namespaces: one test binary fewer to build.)
//!
//! Nodes started over SSH: three "hosts", each a network namespace with an
//! sshd of its own (a throwaway host key, an authorized key made for the
//! test), and a cluster file whose nodes name `ssh: "root@10.79.K.N"`. synod
//! copies its binary and the node's files there and starts each node over
//! OpenSSH with the test's keys and known_hosts (`SYNOD_SSH_CONFIG`).
//!
//! Needs root, `ip`, `sshd`, `ssh` and `ssh-keygen`: without them the test
//! says it is skipped, and where SYNOD_REQUIRE_TOOLS=1 (as `.ci/run` sets
//! after installing them) it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::sh;
use crate::support::Env;

const INSTALL: &str = "apt-get install -y openssh-server openssh-client iproute2";

fn possible(test: &str) -> bool {
    let tools = ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"]
        .iter()
        .all(|t| Path::new(t).exists())
        && Command::new("ip").arg("-V").output().is_ok();
    crate::possible_with(
        test,
        tools,
        &format!("sshd, ssh, ssh-keygen or ip is missing ({INSTALL})"),
    )
}

fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Three hosts on a bridge, each with an sshd; torn down when dropped.
struct Hosts {
    k: u8,
    sshd: Vec<Child>,
    config: PathBuf,
    _keys: tempfile::TempDir,
}

impl Hosts {
    fn new(n: u8) -> Hosts {
        let keys = tempfile::tempdir().unwrap();
        let d = keys.path().display().to_string();
        // A subnet of our own: 10.79.K.0/24 with K from this process.
        let k = (std::process::id() % 200) as u8 + 20;
        must(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {d}/client && ssh-keygen -q -t ed25519 -N '' -f {d}/host && cp {d}/client.pub {d}/authorized_keys && chmod 600 {d}/authorized_keys && mkdir -p /run/sshd"
        ));
        let host_pub = std::fs::read_to_string(format!("{d}/host.pub")).unwrap();
        let mut known = String::new();
        let mut hosts = Hosts {
            k,
            sshd: Vec::new(),
            config: keys.path().join("ssh_config"),
            _keys: keys,
        };
        must(&format!(
            "ip link add synod-sb{k} type bridge && ip addr add 10.79.{k}.254/24 dev synod-sb{k} && ip link set synod-sb{k} up"
        ));
        for i in 1..=n {
            let ns = hosts.space(i);
            let ip = format!("10.79.{k}.{i}");
            must(&format!(
                "ip netns add {ns} && ip link add synod-s{k}-{i} type veth peer name eth0 netns {ns} && ip link set synod-s{k}-{i} master synod-sb{k} up && ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up"
            ));
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "/usr/sbin/sshd",
                    "-D",
                    "-e",
                    "-f",
                    "/dev/null",
                ])
                .args(["-o", &format!("ListenAddress={ip}")])
                .args(["-o", &format!("HostKey={d}/host")])
                .args(["-o", &format!("AuthorizedKeysFile={d}/authorized_keys")])
                .args([
                    "-o",
                    "PidFile=none",
                    "-o",
                    "StrictModes=no",
                    "-o",
                    "UsePAM=no",
                ])
                .args(["-o", "PermitRootLogin=prohibit-password"])
                .args(["-o", "PasswordAuthentication=no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            hosts.sshd.push(child);
            known.push_str(&format!("{ip} {host_pub}"));
        }
        std::fs::write(format!("{d}/known_hosts"), known).unwrap();
        std::fs::write(
            &hosts.config,
            format!(
                "Host *\n  User root\n  IdentityFile {d}/client\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
            ),
        )
        .unwrap();
        // Each sshd answers before the test goes on.
        for i in 1..=n {
            let ok = (0..100).any(|_| {
                let o = Command::new("ssh")
                    .args(["-F", hosts.config.to_str().unwrap()])
                    .arg(format!("10.79.{k}.{i}"))
                    .arg("true")
                    .output()
                    .unwrap();
                o.status.success() || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    false
                }
            });
            assert!(ok, "sshd on host {i} never answered");
        }
        hosts
    }

    /// The hosts' folder for synod (they share this machine's files).
    fn remote_dir(&self) -> String {
        self._keys.path().join("remote").display().to_string()
    }

    fn space(&self, i: u8) -> String {
        format!("synod-ssh{}-h{i}", self.k)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Nodes this test started on the hosts (their command lines name
        // its own folder), should a failure have left any.
        let mine = self.remote_dir();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&mine) {
                // SAFETY: a process whose command line names this test's folder.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 1..=self.sshd.len() as u8 {
            sh(&format!(
                "ip link del synod-s{}-{i}; ip netns del {}",
                self.k,
                self.space(i)
            ));
        }
        sh(&format!("ip link del synod-sb{}", self.k));
    }
}

#[test]
fn nodes_started_over_ssh_serve_fail_and_stop() {
    if !possible("nodes_started_over_ssh_serve_fail_and_stop") {
        return;
    }
    let hosts = Hosts::new(3);
    let k = hosts.k;
    let env = Env::new("sshrun", 3);
    env.edit(|c| {
        for n in &mut c.nodes {
            n.addr = format!("10.79.{k}.{}:{}", n.id, 7100 + n.id)
                .parse()
                .unwrap();
            n.ssh = Some(format!("root@10.79.{k}.{}", n.id));
            // Everything on the "hosts" in a folder this test removes.
            n.ssh_dir = Some(hosts.remote_dir());
        }
    });
    let cfg = hosts.config.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let o = env.synod_with(args, &[("SYNOD_SSH_CONFIG", &cfg)]);
        assert!(
            o.status.success(),
            "synod {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let file = env.file.to_string_lossy().into_owned();
    run(&["up", &file, "--detach"]);
    let pids = env.pids();
    assert_eq!(pids.len(), 3, "{pids:?}");
    run(&["put", "a", "1"]);
    assert_eq!(run(&["get", "a"]), "1\n");
    assert!(run(&["logs", "1"]).contains("node 1"), "node 1's log");

    // Kill the leader on its host, write, bring it back over SSH.
    let st: serde_json::Value = serde_json::from_str(&run(&["status", "--json"])).unwrap();
    let leader = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "leader")
        .map(|n| n["id"].as_u64().unwrap())
        .expect("a leader");
    run(&["kill", &leader.to_string()]);
    run(&["put", "b", "2"]);
    run(&["restart", &leader.to_string()]);

    // A partition (the nodes' own fault layer: these hosts' kernels are
    // the test's namespaces) leaves the majority writing.
    let other = (1..=3).find(|&n| n != leader).unwrap();
    run(&[
        "partition",
        &format!("{other}|{}", {
            let rest: Vec<String> = (1..=3)
                .filter(|&n| n != other)
                .map(|n| n.to_string())
                .collect();
            rest.join(",")
        }),
    ]);
    run(&["put", "c", "3"]);
    run(&["heal"]);
    for (key, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(run(&["get", key]), format!("{v}\n"), "key {key}");
    }

    // down leaves no process on any host (they share this machine's pids).
    let pids = env.pids();
    run(&["down"]);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "pid {pid} still runs after down"
        );
    }
    drop(hosts);
}
