//! Processes: detach a child into its own session, recognise our own nodes,
//! send signals.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::cluster::rundir::RunDir;
use crate::paxos::NodeId;

/// Make the child a session leader, so a terminal's Ctrl-C or hang-up does not
/// reach it: synod stops its nodes itself, by pid.
pub fn detach(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Send `sig` to node `id`'s process `pid`, here or over SSH on its host.
pub fn signal_node(dir: &RunDir, id: NodeId, pid: u32, sig: i32) -> bool {
    match super::remote::Host::of(dir, id) {
        Some(host) => super::remote::signal(&host.target, pid, sig),
        None => signal(pid, sig),
    }
}

/// True if `pid` is alive and is `synod node` for node `id` of `dir` (on
/// its host, over SSH, for a node of another host).
pub fn alive_node(pid: u32, dir: &RunDir, id: NodeId) -> bool {
    // Here first, reading nothing but /proc (callers poll this every few
    // ms): a remote node's command line names its host's folder, never
    // this run directory's cluster file.
    if alive_here(pid, dir, id) {
        return true;
    }
    match super::remote::Host::of(dir, id) {
        Some(host) => super::remote::alive(dir, &host, id, pid),
        None => false,
    }
}

fn alive_here(pid: u32, dir: &RunDir, id: NodeId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if is_zombie(pid) {
        return false;
    }
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cluster = dir.cluster_file().to_string_lossy().into_owned();
    args.iter().any(|a| a == "node")
        && args
            .windows(2)
            .any(|w| w[0] == "--id" && w[1] == id.to_string())
        && args
            .windows(2)
            .any(|w| w[0] == "--cluster" && w[1] == cluster)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Send `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill with a pid we recorded and checked; no memory is involved.
    unsafe { libc::kill(pid as i32, sig) == 0 }
}
