//! `up --netns`: every node a host of its own. Each node runs in a network
//! namespace (`synod-<cluster>-<id>`) with one address on a private subnet
//! (`10.77.K.<id>/24`), joined by a veth pair to a bridge in the host
//! namespace (`10.77.K.254`), so the CLI, chaos and the web server reach
//! every node from outside. Partitions and loss are then nftables rules in
//! the nodes' namespaces: the kernel drops the packets, and the nodes
//! cannot see or cheat it.
//!
//! Everything made here is named `synod-…` and recorded in the run
//! directory's state, and `down` (or a failed `up`) removes exactly that.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};

use super::LaunchError;
pub use crate::cluster::rundir::NetNs;
use crate::cluster::Cluster;
use crate::net::NetFaults;
use crate::paxos::NodeId;

/// The second octet of every subnet synod uses.
const OCTET: u8 = 77;
/// The bridge's host number on each subnet.
const BRIDGE_HOST: u8 = 254;
/// The nftables table synod keeps in each node's namespace.
const TABLE: &str = "synod";

/// Why `--netns` cannot be used here, or `None`.
pub fn unsupported() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "--netns needs root (it makes network namespaces, veth pairs, a bridge and nftables rules)"
                .into(),
        );
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        if !on_path(tool) {
            return Some(format!(
                "--netns needs `{tool}`, which is not installed (apt-get install -y {package})"
            ));
        }
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Some("--netns needs network namespaces, which this kernel lacks".into());
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).is_file())
}

/// The namespace of node `id` of cluster `name`.
pub fn space_name(name: &str, id: NodeId) -> String {
    format!("synod-{name}-{id}")
}

/// Node `id`'s address on subnet `k`.
pub fn node_ip(k: u8, id: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, OCTET, k, id as u8)
}

/// The cluster with every node's addresses moved onto its own host: the
/// same ports, at 10.77.K.<id>. A RESP port there is beyond loopback, so
/// its clients must AUTH (`redis_auth` is turned on).
pub fn mapped(cluster: &Cluster, k: u8) -> Cluster {
    let mut c = cluster.clone();
    if c.nodes.iter().any(|n| n.redis_addr.is_some()) {
        c.redis_auth = true;
    }
    for n in &mut c.nodes {
        let ip = node_ip(k, n.id);
        n.addr = SocketAddr::new(ip.into(), n.addr.port());
        if let Some(r) = &mut n.redis_addr {
            *r = SocketAddr::new(ip.into(), r.port());
        }
    }
    c
}

/// Run `ip ARGS` (or `nft`), with the command in the error.
fn run(tool: &str, args: &[&str], input: Option<&str>) -> Result<(), LaunchError> {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| LaunchError::Failed(format!("cannot run {tool}: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LaunchError::Failed(format!("{tool}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(LaunchError::Failed(format!(
        "`{tool} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn ip(args: &[&str]) -> Result<(), LaunchError> {
    run("ip", args, None)
}

/// Namespaces that exist now.
fn spaces_now() -> BTreeSet<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The subnets (third octets of 10.77.K.0/24) some interface here uses.
fn subnets_used() -> BTreeSet<u8> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|w| w.split('/').next()?.parse::<Ipv4Addr>().ok())
        .filter(|a| a.octets()[0] == 10 && a.octets()[1] == OCTET)
        .map(|a| a.octets()[2])
        .collect()
}

/// Hold this while picking a subnet and making its bridge, so two `up`s at
/// once do not pick the same one.
fn host_lock() -> Result<std::fs::File, LaunchError> {
    let path = std::env::temp_dir().join("synod-netns.lock");
    let file = std::fs::File::create(&path)
        .map_err(|e| LaunchError::Failed(format!("cannot open {}: {e}", path.display())))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(LaunchError::Failed(format!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(file)
}

/// Make the bridge and a namespace for every node of `cluster`. On any
/// failure everything made so far is removed again and the error returned.
pub fn create(cluster: &Cluster) -> Result<NetNs, LaunchError> {
    if let Some(why) = unsupported() {
        return Err(LaunchError::Usage(why));
    }
    if let Some(n) = cluster.nodes.iter().find(|n| n.id == 0 || n.id > 250) {
        return Err(LaunchError::Usage(format!(
            "--netns numbers hosts by node id, 1 to 250; node {} is out of range",
            n.id
        )));
    }
    let existing = spaces_now();
    if let Some(n) = cluster
        .nodes
        .iter()
        .find(|n| existing.contains(&space_name(&cluster.name, n.id)))
    {
        return Err(LaunchError::Failed(format!(
            "network namespace {} exists already (another cluster {:?} with --netns?); `ip netns del` it if it is left over",
            space_name(&cluster.name, n.id),
            cluster.name
        )));
    }
    let _lock = host_lock()?;
    let used = subnets_used();
    let Some(k) = (0..=255u8).find(|k| !used.contains(k)) else {
        return Err(LaunchError::Failed(
            "every subnet 10.77.K.0/24 is in use".into(),
        ));
    };
    let mut made = NetNs {
        subnet: k,
        bridge: format!("synod-br{k}"),
        spaces: Vec::new(),
    };
    let result = build(cluster, &mut made);
    if let Err(e) = result {
        remove(&made);
        return Err(e);
    }
    Ok(made)
}

fn build(cluster: &Cluster, made: &mut NetNs) -> Result<(), LaunchError> {
    let k = made.subnet;
    let bridge = made.bridge.clone();
    ip(&["link", "add", "name", &bridge, "type", "bridge"])?;
    ip(&[
        "addr",
        "add",
        &format!("10.{OCTET}.{k}.{BRIDGE_HOST}/24"),
        "dev",
        &bridge,
    ])?;
    ip(&["link", "set", &bridge, "up"])?;
    for n in &cluster.nodes {
        add_node(cluster, made, n.id)?;
    }
    Ok(())
}

/// Make node `id`'s namespace, its veth pair and its address.
pub fn add_node(cluster: &Cluster, made: &mut NetNs, id: NodeId) -> Result<(), LaunchError> {
    let k = made.subnet;
    let space = space_name(&cluster.name, id);
    ip(&["netns", "add", &space])?;
    made.spaces.push((id, space.clone()));
    let veth = veth_name(k, id);
    ip(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &space,
    ])?;
    ip(&["link", "set", &veth, "master", &made.bridge, "up"])?;
    let addr = format!("{}/24", node_ip(k, id));
    ip(&["-n", &space, "addr", "add", &addr, "dev", "eth0"])?;
    ip(&["-n", &space, "link", "set", "eth0", "up"])?;
    ip(&["-n", &space, "link", "set", "lo", "up"])?;
    Ok(())
}

/// The host end of node `id`'s veth pair on subnet `k`.
fn veth_name(k: u8, id: NodeId) -> String {
    format!("synod-{k}-{id}")
}

/// Remove what `made` records: the namespaces (their veth pairs go with
/// them) and the bridge. Errors are ignored: a part already gone is fine.
pub fn remove(made: &NetNs) {
    for (id, space) in &made.spaces {
        // Deleting one end deletes the pair. A namespace's devices are not
        // always taken down with it at once, so the pair goes first.
        let _ = ip(&["link", "del", &veth_name(made.subnet, *id)]);
        let _ = ip(&["netns", "del", space]);
    }
    let _ = ip(&["link", "del", &made.bridge]);
}

/// The command that runs `program` in node `id`'s namespace.
pub fn command(made: &NetNs, id: NodeId, program: &std::path::Path) -> Option<Command> {
    let space = made.spaces.iter().find(|(n, _)| *n == id)?.1.clone();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &space]).arg(program);
    Some(cmd)
}

/// Install every node's partitions and loss as nftables rules, each in the
/// input hook of the namespace that receives: node R drops what comes from a
/// peer P when either blocks the other, and a share `loss(P)` of all that
/// comes from P (a node's loss is of what it sends, as in its own fault
/// layer). Packets from the bridge (the CLI, chaos's clients, the web
/// server) always pass: partitions cut node-to-node links only.
pub fn apply(hosts: &NetNs, faults: &BTreeMap<NodeId, NetFaults>) -> Result<(), LaunchError> {
    let none = NetFaults::none();
    let of = |n: NodeId| faults.get(&n).unwrap_or(&none);
    for (r, space) in &hosts.spaces {
        let mut rules = String::new();
        for (p, _) in hosts.spaces.iter().filter(|(p, _)| p != r) {
            let from = node_ip(hosts.subnet, *p);
            if of(*r).blocked.contains(p) || of(*p).blocked.contains(r) {
                rules.push_str(&format!("    ip saddr {from} counter drop\n"));
            } else if of(*p).loss_ppm > 0 {
                rules.push_str(&format!(
                    "    ip saddr {from} numgen random mod 1000000 < {} counter drop\n",
                    of(*p).loss_ppm
                ));
            }
        }
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        run(
            "ip",
            &["netns", "exec", space, "nft", "-f", "-"],
            Some(&script),
        )?;
    }
    Ok(())
}

/// What of `faults` a node's own fault layer keeps under `--netns`: delay
/// and duplication (the kernel here has no netem); partitions and loss are
/// the kernel's.
pub fn node_share(faults: &NetFaults) -> NetFaults {
    let mut rest = faults.clone();
    rest.blocked.clear();
    rest.loss_ppm = 0;
    rest
}
