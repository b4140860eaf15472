//! Checkers: did anything go wrong?
//!
//! - [`history`]: client histories (invocation, completion, ok/failed/unknown).
//! - [`linear`]: linearizability of a history against the key-value model.
//! - [`logs`]: the nodes' chosen logs agree slot by slot; no acknowledged write
//!   is missing from them.

pub mod history;
pub mod linear;
pub mod logs;
