//! sigil's wire formats, with no I/O and no keys.
//!
//! - [`v1`]: the generated gRPC services and messages (`sigil.v1`).
//! - [`receipt`]: Pipelock ActionReceipt v1: canonical action-record bytes,
//!   digest, receipt hash, session controls and the bound `g1:` genesis.
//! - [`chain`]: the pure verification of a receipt and of a chain file,
//!   including rotation endorsements and sigil's stricter policies.
//! - [`jcs`]: RFC 8785 canonical JSON for generic documents.
//! - [`directory`]: the key directory document.
//! - [`lineage`]: what a verified directory proves (trust from a pinned root).
//! - [`root`]: the offline root role's documents and the verifier's walk.

// Formats and checks only: nothing here needs unsafe code, so none may
// creep in.
#![forbid(unsafe_code)]

pub mod chain;
pub mod directory;
pub mod endorsement;
mod error;
pub mod gojson;
pub mod jcs;
pub mod json;
pub mod lineage;
pub mod policy;
pub mod receipt;
pub mod root;
pub mod sig;
pub mod timestamp;
pub mod tlog;

pub use error::{Error, FormatError};

/// Generated gRPC code for package `sigil.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("sigil.v1");

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sigil_descriptor.bin"));
}
