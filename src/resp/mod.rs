//! The Redis-protocol front: each node can serve RESP2 on a port of its own
//! (`redis_addr` in the cluster file, or `synod up --redis`), so redis-cli,
//! redis-benchmark and any Redis client library talk to the cluster.
//!
//! - [`proto`]: requests parsed from a buffer, replies encoded (pure).
//! - [`commands`]: what each command does, over a [`commands::Backend`].
//! - [`server`]: the listener and one thread a connection, with synod's own
//!   client as the backend.
//!
//! The port carries data commands only (GET, SET with NX, XX and IFEQ, DEL,
//! EXISTS, MGET) and what clients ask on connecting (PING, INFO, COMMAND,
//! CONFIG GET, CLIENT SETINFO, HELLO 2, AUTH, SELECT 0, QUIT): never faults or
//! administration.

pub mod client;
pub mod commands;
pub mod proto;
pub mod server;

pub use server::{spawn, RespConfig};
