//! [`Members`]: who this node admits and links to, as the configurations in
//! its own log say (issue 23). The cluster file names the nodes of
//! configuration 0; a node added at run time (`synod member add ADDR`) is
//! known from the configuration that added it, which carries its address
//! and public key. A node no kept configuration names (removed, or not yet
//! added) is refused at the door, with the reason.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::net::{Caller, Keys, PublicKey, Roster};
use crate::paxos::{Configs, NodeId, Slot};

/// The membership this node's door and links follow.
pub struct Members {
    me: NodeId,
    /// The configurations, as the log says.
    configs: Configs,
    /// This node's keys, the roster grown by every contact learnt.
    keys: Keys,
}

impl Members {
    /// Members as `configs` say, for node `me` with `keys`.
    pub fn new(me: NodeId, keys: Keys, configs: &Configs) -> Self {
        let mut m = Members {
            me,
            configs: configs.clone(),
            keys,
        };
        m.learn(configs);
        m
    }

    /// Take in `configs`; return every node added at run time they name,
    /// with its address (the router links to those it has no link to).
    pub fn learn(&mut self, configs: &Configs) -> Vec<(NodeId, SocketAddr)> {
        self.configs = configs.clone();
        let mut roster: Option<Roster> = None;
        let mut new = Vec::new();
        for (id, contact) in configs.contacts() {
            if id == self.me {
                continue;
            }
            let (Some(key), Ok(addr)) = (
                PublicKey::from_hex(&contact.key),
                contact.addr.parse::<SocketAddr>(),
            ) else {
                tracing::warn!(
                    "configuration names node {id} with a contact that cannot be used: {contact:?}"
                );
                continue;
            };
            if self.keys.roster.key(&Caller::Node(id)) != Some(&key) {
                let base = roster.as_ref().unwrap_or(&self.keys.roster);
                roster = Some(base.with_node(id, key));
            }
            new.push((id, addr));
        }
        if let Some(r) = roster {
            self.keys = self.keys.with_roster(Arc::new(r));
        }
        new
    }

    /// This node's keys, with every key learnt.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Every node a kept configuration names.
    pub fn named(&self) -> Vec<NodeId> {
        self.configs.all_nodes().into_iter().collect()
    }

    /// Why node `id` is refused at the door (and its connection closed), if
    /// it is: no configuration that governs a slot from `first_unchosen` on
    /// names it (it was removed, or is not added yet). A node its own log
    /// does not name yet (added at run time, before it learnt the change
    /// that added it) admits every node of its run directory: it cannot know
    /// who was removed.
    pub fn refusal(&self, id: NodeId, first_unchosen: Slot) -> Option<String> {
        let member = |c: &crate::paxos::Config| c.voters.contains(&id) || c.learners.contains(&id);
        if self.configs.from(first_unchosen).any(|(_, c)| member(c)) {
            return None;
        }
        let known = self.keys.roster.key(&Caller::Node(id)).is_some();
        if known && !self.configs.names(self.me) {
            return None;
        }
        Some(if known {
            format!(
                "node {id} is not a member of configuration {} (removed, or not yet added)",
                self.configs.latest().number
            )
        } else {
            format!("node {id} is not a member of this cluster")
        })
    }
}

/// The node's members, shared by its router and its door.
pub type SharedMembers = std::rc::Rc<std::cell::RefCell<Members>>;
