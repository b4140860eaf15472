//! synod: Paxos you can run, break and measure on one laptop.
//!
//! - [`paxos`]: the protocol as pure, deterministic state machines.
//! - [`kv`]: the replicated state machine, a key-value map.
//! - [`sim`]: a seeded simulator: virtual time, a lossy network, crashes.
//! - [`demo`]: the explainer's two worked examples, computed by the real code.
//! - [`rng`]: the seeded generator behind every random choice.
//! - [`cli`]: the command line.
//! - [`harness`]: what chaos, the experiment and bench share.
//! - [`stats`]: quantiles and confidence intervals.

pub mod bench;
pub mod chaos;
pub mod check;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod demo;
pub mod experiment;
pub mod harness;
pub mod kv;
pub mod launcher;
pub mod net;
pub mod node;
pub mod paxos;
pub mod resp;
pub mod rng;
pub mod signals;
pub mod sim;
pub mod stats;
pub mod storage;
pub mod web;
