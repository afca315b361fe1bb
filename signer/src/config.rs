//! Daemon configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chain::Settings;
use crate::record::Limits;
use crate::Error;

/// The whole configuration. Every member has a default, so an empty file
/// (or none) runs the embedded default: software key `mediator` in
/// `./sigil-data`, gRPC on 127.0.0.1:7700, HTTP on 127.0.0.1:7701.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: key records, chains, seeds of the software backend.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// HTTP listen address (directory, health).
    pub http_listen: SocketAddr,
    /// Name of the key that signs producer chains.
    pub key_name: String,
    /// Where keys live.
    pub backend: BackendConfig,
    /// Chain behaviour.
    pub chains: ChainsConfig,
    /// Input limits.
    pub limits: LimitsConfig,
    /// Limits of the HTTP listener (directory, metrics, health).
    pub http: HttpConfig,
    /// The receipt transparency log.
    pub log: LogConfig,
    /// Scheduled rotation.
    pub rotation: RotationConfig,
    /// TLS for the gRPC listener, with client certificates.
    pub tls: Option<TlsConfig>,
    /// Client identities and their grants (with TLS).
    pub identities: Vec<crate::auth::Identity>,
    /// No longer honoured: `true` is refused at start. Receipts, rotation
    /// endorsements and the directory are signatures over 32-byte digests,
    /// so a digest oracle on the chain key would forge them.
    pub sign_digest_with_chain_key: bool,
    /// Keep revoked versions in the backend (by default they are destroyed
    /// once the revocation is on every chain, so a stolen token session
    /// cannot use them any more).
    pub keep_revoked: bool,
    /// Set by `sigild --downgrade-root` only (never from a file): set the
    /// imported keyset aside at start and sign as without an offline root.
    #[serde(skip)]
    pub downgrade_root: bool,
    /// Key administration socket (default `<data_dir>/admin.sock`, mode
    /// 0600). Without TLS it is the only place KeyAdmin answers.
    pub admin_socket: Option<PathBuf>,
    /// Uids besides the daemon's own and root that may use the admin socket.
    pub admin_uids: Vec<u32>,
    /// Seconds between re-signatures of the key directory, so that
    /// verifiers can refuse a stale one (`sigil verify
    /// --directory-max-age`, default one day).
    pub directory_resign_seconds: u64,
    /// Seconds the SIGTERM drain may take before requests still open are
    /// cancelled; every chain is then closed (systemd kills at 30 s).
    pub shutdown_grace_seconds: u64,
    /// Milliseconds a token call (sign, find, liveness check) may take before
    /// it answers `UNAVAILABLE`; a hung token then holds no chain.
    pub token_deadline_ms: u64,
    /// Seconds between token liveness checks (which also keep device
    /// sessions from idling out); gRPC health follows the result.
    pub token_check_seconds: u64,
}

/// Server certificate and the CA that issues client certificates (PEM).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA of client certificates.
    pub client_ca: PathBuf,
}

/// Rotation on a schedule: whichever limit comes first. A version may sign
/// the receipts already in flight when its limit is reached.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// Rotate a version older than this many seconds (0: never).
    pub max_age_seconds: u64,
    /// Rotate a version after this many signatures (0: never).
    pub max_signatures: u64,
    /// How often the age is checked, in seconds.
    pub check_seconds: u64,
    /// Least seconds between two scheduled rotations: producers drive the
    /// signature count, and must not be able to make the daemon rotate (and
    /// grow its key history) as fast as they append.
    pub min_interval_seconds: u64,
    /// Under an offline root: rotate to a certified standby this many
    /// seconds before the signing version's window closes.
    pub rotate_lead_seconds: u64,
    /// Under an offline root: standby versions kept ready; below this the
    /// daemon generates more and writes a certification request to
    /// `<data-dir>/root/requests/`.
    pub min_standby: u32,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_age_seconds: 0,
            max_signatures: 0,
            check_seconds: 60,
            min_interval_seconds: 60,
            rotate_lead_seconds: 7 * 86_400,
            min_standby: 2,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./sigil-data"),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            key_name: "mediator".into(),
            backend: BackendConfig::default(),
            chains: ChainsConfig::default(),
            limits: LimitsConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            rotation: RotationConfig::default(),
            token_check_seconds: 10,
            token_deadline_ms: 5000,
            shutdown_grace_seconds: 10,
            sign_digest_with_chain_key: false,
            keep_revoked: false,
            downgrade_root: false,
            admin_socket: None,
            admin_uids: Vec::new(),
            directory_resign_seconds: 3600,
            tls: None,
            identities: Vec::new(),
        }
    }
}

/// The key backend. Secrets (PINs, passwords, auth values) are never in the
/// config itself: it names their source, `file:PATH` (mode 0600) or
/// `env:VAR`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendConfig {
    /// Seeds in files under `seed_dir` (default `<data-dir>/seeds`): the
    /// embedded default, for development and first runs.
    Software {
        /// Seed directory.
        #[serde(default)]
        seed_dir: Option<PathBuf>,
    },
    /// A PKCS#11 token, named by an RFC 7512 URI.
    Pkcs11 {
        /// e.g. `pkcs11:token=sigil?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/sigil/pin`.
        uri: String,
        /// Sessions in the pool (overrides the URI's `x-sessions`).
        #[serde(default)]
        sessions: Option<usize>,
    },
    /// A YubiHSM 2 through yubihsm-connector.
    Yubihsm {
        /// Connector URL, `http://HOST:PORT` (default `http://127.0.0.1:12345`).
        #[serde(default = "default_connector")]
        connector: String,
        /// Authentication key object id.
        auth_key_id: u16,
        /// Password source, `file:PATH` or `env:VAR`.
        password: String,
        /// Domain (1 to 16) for new keys.
        #[serde(default = "default_domain")]
        domain: u8,
        /// Connector timeout, milliseconds.
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// A TPM 2.0 sealing the Ed25519 seed (TPMs cannot sign Ed25519).
    Tpm {
        /// TCTI: `device:/dev/tpmrm0`, or `swtpm:host=127.0.0.1,port=2321`.
        tcti: String,
        /// Sealed blobs (default `<data-dir>/tpm`).
        #[serde(default)]
        dir: Option<PathBuf>,
        /// Auth value source for the sealed objects, `file:PATH` or `env:VAR`.
        #[serde(default)]
        auth: Option<String>,
    },
}

fn default_connector() -> String {
    "http://127.0.0.1:12345".into()
}

fn default_domain() -> u8 {
    1
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Software { seed_dir: None }
    }
}

/// Chain settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainsConfig {
    /// Seconds between heartbeat receipts on each chain (0: none).
    pub heartbeat_seconds: u64,
    /// A chain not written for this many seconds is closed (session_close,
    /// reason `idle`) and its file and memory given back; the next append
    /// reopens it (0: never).
    pub idle_close_seconds: u64,
    /// Most receipts committed with one fsync.
    pub max_batch: usize,
    /// Requests queued per chain before callers wait.
    pub queue_depth: usize,
    /// Most chains the daemon holds.
    pub max_chains: usize,
    /// Of those, kept for SignDigest ledgers (at most half of max_chains):
    /// producers filling the daemon must not stop SignDigest.
    pub ledger_reserve: usize,
    /// Chains one producer identity may create (0: no limit).
    pub max_per_identity: usize,
    /// Recent receipts checked for a repeated action_id.
    pub replay_window: usize,
    /// `policy_hash` written into session controls.
    pub policy_hash: String,
}

impl Default for ChainsConfig {
    fn default() -> Self {
        let s = Settings::default();
        ChainsConfig {
            heartbeat_seconds: s.heartbeat_seconds,
            idle_close_seconds: s.idle_close_seconds,
            max_batch: s.max_batch,
            queue_depth: s.queue_depth,
            max_chains: 10_000,
            ledger_reserve: 64,
            max_per_identity: 0,
            replay_window: s.replay_window,
            policy_hash: s.policy_hash,
        }
    }
}

/// The receipt transparency log (`[log]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log every receipt and sign checkpoints (default true).
    pub enabled: bool,
    /// The log's identity, first line of its checkpoints (default
    /// `<hostname>/sigil`).
    pub origin: Option<String>,
    /// Shortest time between two checkpoints, in seconds (default 1).
    pub checkpoint_seconds: u64,
    /// Shortest time between two seal entries in one chain, in seconds
    /// (default 10); every chain is sealed at shutdown.
    pub seal_seconds: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            origin: None,
            checkpoint_seconds: 1,
            seal_seconds: 10,
        }
    }
}

impl LogConfig {
    /// The settings the log runs with: the origin defaults to
    /// `<hostname>/sigil`.
    pub fn settings(&self) -> crate::log::LogSettings {
        let origin = self.origin.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("{host}/sigil")
        });
        crate::log::LogSettings {
            origin,
            origin_configured: self.origin.is_some(),
            checkpoint_seconds: self.checkpoint_seconds,
        }
    }
}

/// Limits of the HTTP listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_seconds: u64,
    /// Seconds a connection may stay open, busy or idle.
    pub connection_timeout_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 256,
            header_timeout_seconds: 5,
            connection_timeout_seconds: 30,
        }
    }
}

/// Input limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest record, bytes.
    pub max_record_bytes: usize,
    /// Largest string in a record, bytes.
    pub max_field_bytes: usize,
    /// Largest gRPC message, bytes.
    pub max_message_bytes: usize,
    /// Appends (and digest signatures) per second per caller identity
    /// (0: no limit); over it, RESOURCE_EXHAUSTED.
    pub rate_per_second: f64,
    /// Burst allowed above the rate.
    pub burst: u32,
    /// Bytes of records in flight and replies not yet read that one
    /// AppendStream may hold; past it the stream stops reading.
    pub stream_buffer_bytes: usize,
    /// Concurrent gRPC streams (calls) per connection.
    pub max_streams_per_connection: u32,
    /// Bytes of records queued on chains and not yet answered, across the
    /// daemon; beyond it, RESOURCE_EXHAUSTED.
    pub queued_record_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_record_bytes: l.max_record_bytes,
            max_field_bytes: l.max_field_bytes,
            max_message_bytes: 256 * 1024,
            rate_per_second: 0.0,
            burst: 1000,
            stream_buffer_bytes: 8 << 20,
            max_streams_per_connection: 64,
            queued_record_bytes: 256 << 20,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Refuses settings that cannot be run safely.
    pub fn check(&self) -> Result<(), Error> {
        for (what, addr) in [
            ("grpc_listen", self.grpc_listen),
            ("http_listen", self.http_listen),
        ] {
            if self.tls.is_none() && !addr.ip().is_loopback() {
                return Err(Error::Config(format!(
                    "{what} {addr} is not a loopback address; without TLS configured sigild \
                     listens on loopback only, so that no one else can append or sign"
                )));
            }
        }
        sigil_keys::KeyId::new(&self.key_name, 1)?;
        if self.sign_digest_with_chain_key {
            return Err(Error::Config(
                "sign_digest_with_chain_key is no longer supported: a digest oracle on the chain \
                 key forges receipts and the directory. Remove it and create a key for digests \
                 (sigil keys create NAME)"
                    .into(),
            ));
        }
        let rate = self.limits.rate_per_second;
        if !rate.is_finite() || rate < 0.0 {
            return Err(Error::Config(format!(
                "limits.rate_per_second = {rate} must be a finite number, 0 or more (0: no limit)"
            )));
        }
        if self.directory_resign_seconds == 0 {
            return Err(Error::Config(
                "directory_resign_seconds must be at least 1".into(),
            ));
        }
        if self.chains.max_batch == 0 || self.chains.queue_depth == 0 {
            return Err(Error::Config(
                "chains.max_batch and chains.queue_depth must be at least 1".into(),
            ));
        }
        if self.log.enabled {
            crate::log::check_origin(&self.log.settings().origin)?;
            if self.log.checkpoint_seconds == 0 {
                return Err(Error::Config(
                    "log.checkpoint_seconds must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// Limits of the HTTP listener.
    pub fn http_limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_connections: self.http.max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(self.http.header_timeout_seconds.max(1)),
            connection_timeout: std::time::Duration::from_secs(
                self.http.connection_timeout_seconds.max(1),
            ),
        }
    }

    /// Where the admin socket is.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }

    /// Chain settings for the sequencers.
    pub fn settings(&self) -> Settings {
        Settings {
            heartbeat_seconds: self.chains.heartbeat_seconds,
            idle_close_seconds: self.chains.idle_close_seconds,
            max_batch: self.chains.max_batch,
            queue_depth: self.chains.queue_depth,
            policy_hash: self.chains.policy_hash.clone(),
            replay_window: self.chains.replay_window,
        }
    }

    /// Record limits.
    pub fn record_limits(&self) -> Limits {
        Limits {
            max_record_bytes: self.limits.max_record_bytes,
            max_field_bytes: self.limits.max_field_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_that_is_not_a_number_is_refused_not_taken_as_no_limit() {
        for bad in ["nan", "inf", "-1.0"] {
            let c: Config =
                toml::from_str(&format!("[limits]\nrate_per_second = {bad}\n")).expect("parses");
            let e = c.check().expect_err(bad).to_string();
            assert!(e.contains("rate_per_second"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_example_config_parses_and_passes_its_checks() {
        let c: Config = toml::from_str(include_str!("../sigild.example.toml")).unwrap();
        c.check().unwrap();
        assert_eq!(c.key_name, "mediator");
        assert!(matches!(c.backend, BackendConfig::Software { .. }));
    }

    #[test]
    fn every_commented_backend_parses() {
        let text = include_str!("../sigild.example.toml");
        for kind in ["pkcs11", "yubihsm", "tpm"] {
            let start = text.find(&format!("# kind = \"{kind}\"")).unwrap();
            let block: String = text[..start]
                .lines()
                .last()
                .into_iter()
                .chain(text[start..].lines().take_while(|l| l.starts_with('#')))
                .map(|l| l.trim_start_matches("# ").to_owned() + "\n")
                .filter(|l| !l.starts_with('#'))
                .collect();
            let c: Config =
                toml::from_str(&block).unwrap_or_else(|e| panic!("{kind}: {e}\n{block}"));
            assert!(
                !matches!(c.backend, BackendConfig::Software { .. }),
                "{kind}"
            );
        }
    }

    #[test]
    fn non_loopback_listeners_are_refused_and_say_why() {
        let c = Config {
            grpc_listen: "0.0.0.0:7700".parse().unwrap(),
            ..Config::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("loopback"));
    }
}
