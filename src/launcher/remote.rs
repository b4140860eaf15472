//! Nodes on other hosts, started over SSH (`ssh: "user@host"` in the
//! cluster file), as Jepsen and TiUP start theirs from a control machine.
//!
//! synod runs the system's OpenSSH client with the user's own keys,
//! `known_hosts` and configuration, in batch mode (it never asks, and never
//! turns host-key checking off). `SYNOD_SSH_CONFIG=FILE` adds `-F FILE`.
//! On the host everything lives under the node's `ssh_dir` (default
//! `~/.synod-remote/`): the binary in `bin/synod` (copied when missing or
//! when its SHA-256 differs from this one's), and per cluster the files a
//! node reads, its data and its log.

use std::path::Path;
use std::process::{Command, Stdio};

use super::LaunchError;
use crate::cluster::rundir::RunDir;
use crate::paxos::{NodeId, Rule};

/// Where a node of another host runs: its SSH target and its folder there.
#[derive(Clone, Debug)]
pub struct Host {
    /// `[user@]host`.
    pub target: String,
    /// The folder for the binary and the clusters' files (relative to the
    /// login's home, or absolute).
    pub base: String,
}

impl Host {
    /// Node `id`'s host in `dir`'s cluster, if it has one.
    pub fn of(dir: &RunDir, id: NodeId) -> Option<Host> {
        let cluster = crate::cluster::Cluster::load(&dir.cluster_file()).ok()?;
        let n = cluster.node(id)?;
        Some(Host {
            target: n.ssh.clone()?,
            base: n.ssh_dir.clone().unwrap_or_else(|| ".synod-remote".into()),
        })
    }

    fn bin(&self) -> String {
        format!("{}/bin/synod", self.base)
    }

    /// The cluster's folder there.
    fn root(&self, dir: &RunDir) -> String {
        format!("{}/{}", self.base, cluster_name(dir))
    }
}

/// `ssh [-F config] -o BatchMode=yes target`.
fn ssh(target: &str) -> Command {
    let mut cmd = Command::new("ssh");
    if let Some(cfg) = std::env::var_os("SYNOD_SSH_CONFIG") {
        cmd.arg("-F").arg(cfg);
    }
    cmd.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        // A host that stops answering is given up after 15 s.
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "--",
        target,
    ]);
    cmd
}

/// Run `script` (sh) on `target`, `input` on its standard input; its
/// standard output, or an error naming the host and what it said.
fn run(target: &str, script: &str, input: Option<&Path>) -> Result<String, LaunchError> {
    let mut cmd = ssh(target);
    cmd.arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match input {
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| LaunchError::Failed(format!("cannot read {}: {e}", p.display())))?;
            cmd.stdin(f);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let out = cmd
        .output()
        .map_err(|e| LaunchError::Failed(format!("cannot run ssh (openssh-client): {e}")))?;
    if !out.status.success() {
        return Err(LaunchError::Failed(format!(
            "ssh {target}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The SHA-256 of a local file, by `sha256sum`.
fn local_hash(p: &Path) -> Result<String, LaunchError> {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .map_err(|e| LaunchError::Failed(format!("cannot run sha256sum: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Copy this binary to `target` unless the one there has the same hash.
fn ensure_binary(host: &Host, exe: &Path) -> Result<(), LaunchError> {
    let want = local_hash(exe)?;
    let (target, bin, base) = (&host.target, host.bin(), &host.base);
    let there = run(
        target,
        &format!("sha256sum {bin} 2>/dev/null || true"),
        None,
    )?;
    if there.split_whitespace().next() == Some(want.as_str()) {
        return Ok(());
    }
    run(
        target,
        &format!(
            "mkdir -p {base}/bin && cat > {bin}.tmp && chmod 755 {bin}.tmp && mv {bin}.tmp {bin}"
        ),
        Some(exe),
    )?;
    Ok(())
}

/// Start node `id` of `dir` on `target`: the binary and the files it reads
/// copied first; its pid there.
pub fn start(
    dir: &RunDir,
    host: &Host,
    id: NodeId,
    broken: Option<Rule>,
    exe: &Path,
) -> Result<u32, LaunchError> {
    ensure_binary(host, exe)?;
    let target = host.target.as_str();
    let root = host.root(dir);
    let bin = host.bin();
    let copy = |local: &Path, remote: &str| {
        run(
            target,
            &format!("umask 077 && mkdir -p {root}/node-{id} && cat > {root}/{remote}"),
            Some(local),
        )
    };
    copy(&dir.cluster_file(), "cluster.ron")?;
    copy(&dir.keys_file(), "keys.ron")?;
    copy(&dir.client_key_file(), "client.key")?;
    copy(&dir.identity_file(id), &format!("node-{id}.key"))?;
    let broken = broken
        .map(|r| format!(" --break {}", r.name()))
        .unwrap_or_default();
    let script = format!(
        "cd {root} || exit 1; case {bin} in /*) b={bin};; *) b=\"$HOME/{bin}\";; esac; setsid nohup \"$b\" node --cluster \"$PWD/cluster.ron\" --id {id} \
         --data \"$PWD/node-{id}\" --identity \"$PWD/node-{id}.key\" --client-key \"$PWD/client.key\" \
         --keys \"$PWD/keys.ron\"{broken} >> node-{id}.log 2>&1 < /dev/null & echo $!"
    );
    let out = run(target, &script, None)?;
    out.trim().parse().map_err(|_| {
        LaunchError::Failed(format!(
            "ssh {target}: starting node {id} printed {out:?}, not a pid"
        ))
    })
}

/// True if `pid` on `target` is node `id` of this cluster.
pub fn alive(dir: &RunDir, host: &Host, id: NodeId, pid: u32) -> bool {
    let script = format!(
        "tr '\\0' ' ' < /proc/{pid}/cmdline 2>/dev/null; grep -q '^State:.*Z' /proc/{pid}/status 2>/dev/null && echo zombie; true"
    );
    match run(&host.target, &script, None) {
        Ok(cmdline) => {
            !cmdline.contains("zombie")
                && cmdline.contains(" node ")
                && cmdline.contains(&format!("--id {id} "))
                && cmdline.contains(&format!("{}/cluster.ron", host.root(dir)))
        }
        Err(_) => false,
    }
}

/// Send `sig` to `pid` on `target`.
pub fn signal(target: &str, pid: u32, sig: i32) -> bool {
    run(target, &format!("kill -{sig} {pid}"), None).is_ok()
}

/// Copy what node `id` wrote to its log on its host to standard output, as
/// it comes (not held in memory).
pub fn log(dir: &RunDir, host: &Host, id: NodeId) -> Result<(), LaunchError> {
    let root = host.root(dir);
    let status = ssh(&host.target)
        .arg(format!("cat {root}/node-{id}.log 2>/dev/null || true"))
        .stdin(Stdio::null())
        .status()
        .map_err(|e| LaunchError::Failed(format!("cannot run ssh (openssh-client): {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(LaunchError::Failed(format!(
            "ssh {}: reading node {id}'s log failed ({status})",
            host.target
        )))
    }
}

fn cluster_name(dir: &RunDir) -> String {
    dir.root()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
