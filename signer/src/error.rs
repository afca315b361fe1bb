use sigil_keys::KeyError;
use thiserror::Error;

/// Errors of the daemon. Each maps to one gRPC status; messages never carry
/// secrets.
#[derive(Debug, Error)]
pub enum Error {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The record repeats an action already in the chain.
    #[error("{0}")]
    AlreadyExists(String),
    /// An unknown key or chain.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller did not say who it is (no client certificate).
    #[error("{0}")]
    Unauthenticated(String),
    /// A limit was reached (chains, queue depth).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The state does not allow it (no certified standby to rotate to, a
    /// root document that does not follow the imported one).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The token or the disk failed; nothing was written. Retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A key backend failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file of the data dir could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file and operation.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A chain or key file is damaged beyond the torn last line that
    /// recovery cuts; the daemon will not guess.
    #[error("{0}")]
    Corrupt(String),
    /// A broken invariant inside the daemon.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::Io`] for `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Status;
        let msg = e.to_string();
        match e {
            Error::InvalidArgument(_) => Status::invalid_argument(msg),
            Error::AlreadyExists(_) => Status::already_exists(msg),
            Error::NotFound(_) => Status::not_found(msg),
            Error::PermissionDenied(_) => Status::permission_denied(msg),
            Error::Unauthenticated(_) => Status::unauthenticated(msg),
            Error::ResourceExhausted(_) => Status::resource_exhausted(msg),
            Error::FailedPrecondition(_) => Status::failed_precondition(msg),
            Error::Unavailable(_) | Error::Io { .. } => Status::unavailable(msg),
            Error::Key(k) if k.is_unavailable() => Status::unavailable(msg),
            Error::Key(KeyError::NotFound { .. }) => Status::not_found(msg),
            Error::Key(_) | Error::Config(_) | Error::Corrupt(_) | Error::Internal(_) => {
                Status::internal(msg)
            }
        }
    }
}
