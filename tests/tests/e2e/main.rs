//! sigil end to end, in one test binary: a module per area (`append_*`,
//! `chain_*`, `rotation_*`, `root_*`, ...), each against a real sigild (a
//! process, or in this process for the MockHsm and injected token faults),
//! real tokens and Pipelock's verifier. One binary links tonic, tokio and
//! the token crates once instead of once per file. The modules share this
//! process: whatever is process-wide (environment, a SoftHSM module loaded
//! in process) goes through sigil-tests or sigil-testkit, never through
//! one module alone.

mod admin_socket;
mod append_bad_input;
mod append_stream;
mod auth_mtls;
mod backend_scenario;
mod chain_concurrent;
mod chain_crash;
mod chain_idle;
mod chain_recovery;
mod chain_resume;
mod chain_sigterm_load;
mod cli_contract;
mod cli_docs;
mod cli_errors;
mod data_dir_lock;
mod directory_signed;
mod example_python;
mod fault_disk_full;
mod fault_fsync;
mod fault_token;
mod front_stage;
mod http_limits;
mod keyring_readers;
mod limits;
mod log_interop;
mod log_transparency;
mod observability_metrics;
mod pkcs11_daemon;
mod revocation_chain;
mod root_ceremony;
mod root_crash;
mod root_guards;
mod root_migration;
mod root_pins;
mod root_rotation;
mod root_statement;
mod root_window;
mod root_yubihsm;
mod rotation_chain;
mod rotation_crash;
mod rotation_schedule;
mod shutdown_bounded;
mod stream_budget;
mod tpm_daemon;
mod tpm_health;
mod trust_forgery;
mod verify_corpus;
mod yubihsm_daemon;
