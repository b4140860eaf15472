//! Checkers: did anything go wrong?
//!
//! - [`history`]: client histories (invocation, completion, ok/failed/unknown).
//! - [`linear`]: linearizability of a history against the key-value model.

pub mod history;
pub mod linear;
