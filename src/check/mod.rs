//! Checkers: did anything go wrong?
//!
//! - [`history`]: client histories (invocation, completion, ok/failed/unknown).
//! - [`input`]: a history from a file: synod's jsonl or Jepsen's EDN (read by
//!   [`edn`]), for `synod check`.
//! - [`linear`]: linearizability of a history against the key-value model.
//! - [`synth`]: made-up Jepsen-like register histories, for measuring.
//! - [`logs`]: the nodes' chosen logs agree slot by slot; no acknowledged write
//!   is missing from them.

pub mod edn;
pub mod history;
pub mod input;
pub mod linear;
pub mod logs;
pub mod report;
pub mod synth;
pub mod window;
