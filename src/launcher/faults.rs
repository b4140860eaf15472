//! Message faults and partitions, applied through each node's administration
//! port (`SetFaults`).

use std::time::Duration;

use super::*;

pub(super) fn set_faults(cluster: &Cluster, id: NodeId, f: &NetFaults) -> Result<(), LaunchError> {
    let addr = cluster.node(id).expect("known").addr;
    match client::query(
        addr,
        cluster,
        &Request::SetFaults(f.clone()),
        Duration::from_secs(1),
    ) {
        Ok(Response::Ok) => Ok(()),
        Ok(other) => Err(LaunchError::Failed(format!("node {id} refused: {other:?}"))),
        Err(e) => Err(LaunchError::Failed(format!(
            "node {id} did not answer: {e}"
        ))),
    }
}

/// Change the message faults of the nodes in `ids` with `change`; remember them
/// for restarts. Nodes that are down keep the change for when they return.
pub fn change_faults(
    dir: &RunDir,
    ids: &[NodeId],
    change: impl Fn(NodeId, &mut NetFaults),
) -> Result<Vec<String>, LaunchError> {
    let cluster = dir.cluster()?;
    for &id in ids {
        known(&cluster, id)?;
    }
    let _lock = dir.lock()?;
    let mut state = dir.state();
    let mut skipped = Vec::new();
    for &id in ids {
        let ns = state.nodes.entry(id).or_default();
        change(id, &mut ns.faults);
        let running = ns.pid.is_some_and(|p| alive_node(p, dir, id)) && !ns.paused;
        // With --netns, partitions and loss are the kernel's, in the node's
        // namespace (there whether the node runs or not); the node keeps
        // delay and duplication.
        let own = match &state.netns {
            Some(_) => super::netns::node_share(&ns.faults),
            None => ns.faults.clone(),
        };
        if running {
            if let Err(e) = set_faults(&cluster, id, &own) {
                skipped.push(e.to_string());
            }
        } else {
            skipped.push(format!(
                "node {id} is not running; it gets the change when it restarts"
            ));
        }
    }
    if let Some(hosts) = &state.netns {
        let all = state
            .nodes
            .iter()
            .map(|(&id, n)| (id, n.faults.clone()))
            .collect();
        super::netns::apply(hosts, &all)?;
    }
    dir.save(&state)?;
    Ok(skipped)
}

/// Split the cluster into `sides`: each node drops what it sends to, and what
/// it hears from, the other sides; a node on no side is cut off alone. A line
/// that says what was done.
pub fn partition(dir: &RunDir, sides: &[Vec<NodeId>]) -> Result<String, LaunchError> {
    let cluster = dir.cluster()?;
    let ids = cluster.ids();
    let mut sides: Vec<Vec<NodeId>> = sides.iter().filter(|s| !s.is_empty()).cloned().collect();
    let mut seen = Vec::new();
    for &id in sides.iter().flatten() {
        if !ids.contains(&id) {
            return Err(LaunchError::Usage(format!(
                "no node {id} in cluster {:?}",
                cluster.name
            )));
        }
        if seen.contains(&id) {
            return Err(LaunchError::Usage(format!("node {id} is on two sides")));
        }
        seen.push(id);
    }
    for &id in &ids {
        if !seen.contains(&id) {
            sides.push(vec![id]);
        }
    }
    if sides.len() < 2 {
        return Err(LaunchError::Usage(
            "give at least two sides, like [[1,2],[3,4,5]]".to_string(),
        ));
    }
    let side_of = |id: NodeId| sides.iter().position(|s| s.contains(&id));
    let notes = change_faults(dir, &ids, |id, f| {
        f.blocked = ids
            .iter()
            .copied()
            .filter(|&o| side_of(o) != side_of(id))
            .collect();
    })?;
    let shown: Vec<String> = sides
        .iter()
        .map(|s| {
            s.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let mut text = format!("partitioned: {}", shown.join(" | "));
    for n in notes {
        text.push_str(&format!("; note: {n}"));
    }
    Ok(text)
}

pub fn parse_sides(spec: &str, cluster: &Cluster) -> Result<Vec<Vec<NodeId>>, LaunchError> {
    let mut seen = Vec::new();
    let mut sides = Vec::new();
    for part in spec.split('|') {
        let mut side = Vec::new();
        for tok in part.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let id: NodeId = tok.parse().map_err(|_| {
                LaunchError::Usage(format!("bad partition {spec:?}: {tok:?} is not a node id; write sides like \"1,2|3,4,5\""))
            })?;
            known(cluster, id)?;
            if seen.contains(&id) {
                return Err(LaunchError::Usage(format!(
                    "bad partition {spec:?}: node {id} is on two sides"
                )));
            }
            seen.push(id);
            side.push(id);
        }
        if !side.is_empty() {
            sides.push(side);
        }
    }
    if sides.len() < 2 && seen.len() == cluster.nodes.len() {
        return Err(LaunchError::Usage(format!(
            "bad partition {spec:?}: give at least two sides, like \"1,2|3,4,5\""
        )));
    }
    // Nodes not listed are on a side of their own each.
    for id in cluster.ids() {
        if !seen.contains(&id) {
            sides.push(vec![id]);
        }
    }
    Ok(sides)
}
