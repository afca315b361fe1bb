//! sigild: the sigil signing daemon.
//!
//! Producers append action records to named chains over gRPC; each chain's
//! sequencer signs a Pipelock ActionReceipt v1 with the chain's key inside
//! its backend, links it by hash to the previous receipt, and makes it
//! durable before the reply.

pub mod admin;
pub mod auth;
pub mod backends;
pub mod bench;
pub mod chain;
pub mod config;
pub mod counters;
pub mod deadline;
mod error;
pub mod failpoint;
pub mod front;
pub mod http;
pub mod keyring;
pub mod lifecycle;
pub mod log;
pub mod metered;
pub mod metrics;
pub mod ratelimit;
pub mod receipts;
pub mod record;
pub mod registry;
pub mod root_role;
pub mod secrets;
pub mod server;
pub mod store;

pub use error::Error;
