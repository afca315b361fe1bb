//! The errors a first run of `sigil` meets say what to do: no daemon at the
//! endpoint, an endpoint that is not http(s)://HOST:PORT, and TLS files that
//! are missing, unreadable, not PEM or given without their pair.

use std::process::{Command, Output, Stdio};

use sigil_tests::bin;

const RUNTIME: i32 = 2;
const USAGE: i32 = 64;

/// Runs `sigil` with `args` and `env`, without the SIGIL_* variables a
/// developer's shell may hold, and no standard input.
fn sigil(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("sigil"));
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SIGIL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied()).output().expect("run sigil")
}

/// Asserts the exit code and that stderr has each of `needles` (the first
/// compared without case); returns stderr.
fn fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "{n:?} not in: {err}"
        );
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// An endpoint on a loopback port nobody listens on.
fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", sigil_testkit::ports::free_port())
}

const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[test]
fn no_daemon_at_the_endpoint_says_to_start_sigild() {
    let ep = dead_endpoint();
    let needles = [
        "is sigild running?",
        &format!("cannot reach sigild at {ep}: connection refused"),
        "start it with `sigild`",
        "--endpoint",
        "SIGIL_ENDPOINT",
    ];
    fails(
        &sigil(&["--endpoint", &ep, "directory"], &[]),
        RUNTIME,
        &needles,
    );

    // The same from the environment, and for append (whose record is read
    // before connecting).
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("r.json");
    std::fs::write(&record, sigil_tests::record(1)).unwrap();
    fails(
        &sigil(
            &[
                "append",
                "--chain",
                "c",
                "--record",
                record.to_str().unwrap(),
            ],
            &[("SIGIL_ENDPOINT", &ep)],
        ),
        RUNTIME,
        &needles,
    );
}

#[test]
fn an_endpoint_that_is_not_http_or_https_says_what_one_looks_like() {
    for ep in [
        "127.0.0.1:7700",
        "localhost:7700",
        "grpc://127.0.0.1:7700",
        "ftp://127.0.0.1:7700",
        "http://",
        "not a url",
    ] {
        let err = fails(
            &sigil(&["--endpoint", ep, "directory"], &[]),
            RUNTIME,
            &[
                "http://HOST:PORT or https://HOST:PORT",
                "https needs --ca, and --cert/--key-file for mTLS",
            ],
        );
        assert!(err.contains(&format!("{ep:?}")), "{ep} not named: {err}");
    }
}

#[test]
fn https_without_a_ca_names_the_flag() {
    // Also with a client certificate: the CA is what is missing.
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.crt");
    std::fs::write(&cert, PEM_CERT).unwrap();
    for extra in [
        vec![],
        vec![
            "--cert",
            cert.to_str().unwrap(),
            "--key-file",
            cert.to_str().unwrap(),
        ],
    ] {
        let mut args = vec!["--endpoint", "https://127.0.0.1:7700"];
        args.extend(extra);
        args.push("directory");
        fails(
            &sigil(&args, &[]),
            RUNTIME,
            &["https endpoint https://127.0.0.1:7700 needs --ca"],
        );
    }
}

/// `sigil directory` at an https endpoint with the `tls` flags.
fn https(tls: &[&str]) -> Output {
    let mut args = vec!["--endpoint", "https://127.0.0.1:7700"];
    args.extend(tls);
    args.push("directory");
    sigil(&args, &[])
}

#[test]
fn missing_or_non_pem_tls_files_are_named_with_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("nowhere/ca.pem");
    let missing = missing.to_str().unwrap();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, PEM_CERT).unwrap();
    let ca = ca.to_str().unwrap();
    let der = d.join("ca.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a]).unwrap();
    let der = der.to_str().unwrap();
    let key_as_cert = d.join("key.pem");
    std::fs::write(
        &key_as_cert,
        "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let key = key_as_cert.to_str().unwrap();

    // A --ca that does not exist; also through SIGIL_CA.
    fails(
        &https(&["--ca", missing]),
        RUNTIME,
        &[&format!("cannot read --ca {missing}"), "no such file"],
    );
    fails(
        &sigil(
            &["--endpoint", "https://127.0.0.1:7700", "directory"],
            &[("SIGIL_CA", missing)],
        ),
        RUNTIME,
        &[&format!("cannot read --ca {missing}")],
    );
    // A --ca that is DER, or a key rather than a certificate.
    fails(
        &https(&["--ca", der]),
        RUNTIME,
        &[&format!("--ca {der} is not PEM"), "CERTIFICATE-----"],
    );
    fails(
        &https(&["--ca", key]),
        RUNTIME,
        &[&format!("--ca {key} is not PEM")],
    );
    // The client pair: each file checked under its own flag.
    fails(
        &https(&["--ca", ca, "--cert", missing, "--key-file", key]),
        RUNTIME,
        &[&format!("cannot read --cert {missing}")],
    );
    fails(
        &https(&["--ca", ca, "--cert", ca, "--key-file", missing]),
        RUNTIME,
        &[&format!("cannot read --key-file {missing}")],
    );
    fails(
        &https(&["--ca", ca, "--cert", ca, "--key-file", ca]),
        RUNTIME,
        &[&format!("--key-file {ca} is not PEM"), "PRIVATE KEY-----"],
    );
}

#[test]
fn half_a_client_identity_is_a_usage_error_naming_the_other_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, PEM_CERT).unwrap();
    let ca = ca.to_str().unwrap();
    fails(
        &https(&["--ca", ca, "--cert", ca]),
        USAGE,
        &[&format!("--cert {ca} needs --key-file")],
    );
    fails(
        &https(&["--ca", ca, "--key-file", ca]),
        USAGE,
        &[&format!("--key-file {ca} needs --cert")],
    );
}
