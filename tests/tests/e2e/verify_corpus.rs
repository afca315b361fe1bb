//! `sigil verify` over Pipelock's conformance corpus: every fixture of
//! tests/vectors/pipelock/EXPECTED.json gets its expected verdict, and in
//! pipelock-compatible mode sigil agrees with pipelock-verify 0.4.1 on every
//! one. Also the exit codes of usage and runtime errors.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sigil_tests::{pipelock_verify, pipelock_verify_bin, sigil, vectors};

/// The corpus README's "Verifier policy assumptions": a max age of 8760h,
/// measured at the instant the fixtures were stamped (2026-04-15T12:00:00Z),
/// and a chain may not allow what it blocked before. pipelock-verify 0.4.1
/// has neither check, so the fixtures with a `note` need them.
const CORPUS_POLICY: [&str; 5] = [
    "--max-age-hours",
    "8760",
    "--at",
    "2026-04-15T12:00:00Z",
    "--forbid-reversal",
];

struct Fixture {
    file: PathBuf,
    accept: bool,
    key: String,
    session_id: Option<String>,
    endorsements: Vec<PathBuf>,
    label: String,
}

impl Fixture {
    fn is_chain(&self) -> bool {
        self.file.extension().is_some_and(|e| e == "jsonl")
    }
}

fn fixtures() -> Vec<Fixture> {
    let root = vectors().join("pipelock");
    let text = std::fs::read_to_string(root.join("EXPECTED.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let list = doc["fixtures"].as_array().unwrap();
    assert!(
        list.len() >= 40,
        "EXPECTED.json lists {} fixtures",
        list.len()
    );
    list.iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap();
            let endorsements: Vec<PathBuf> = f["rotation_endorsements"]
                .as_array()
                .map(|a| a.iter().map(|e| root.join(e.as_str().unwrap())).collect())
                .unwrap_or_default();
            let verdict = f["verdict"].as_str().unwrap();
            assert!(verdict == "accept" || verdict == "reject", "{verdict}");
            Fixture {
                file: root.join(file),
                accept: verdict == "accept",
                key: f["pinned_key"].as_str().unwrap().to_owned(),
                session_id: f["session_id"].as_str().map(str::to_owned),
                label: format!("{file} (endorsements: {})", endorsements.len()),
                endorsements,
            }
        })
        .collect()
}

/// Runs `sigil verify receipt|chain` on a fixture with `policy` flags;
/// returns the exit code and the output.
fn sigil_verify(f: &Fixture, policy: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = vec!["verify".into()];
    args.push(if f.is_chain() { "chain" } else { "receipt" }.into());
    args.push(f.file.display().to_string());
    args.extend(["--key".into(), f.key.clone()]);
    if f.is_chain() {
        if let Some(s) = &f.session_id {
            args.extend(["--session-id".into(), s.clone()]);
        }
        for e in &f.endorsements {
            args.extend(["--rotation-endorsement".into(), e.display().to_string()]);
        }
    }
    args.extend(policy.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sigil(&refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("sigil exited by a signal"), text)
}

/// Runs pipelock-verify on a fixture as its README says; returns whether it
/// accepted and its output.
fn pipelock(f: &Fixture) -> (bool, String) {
    let mut cmd = Command::new(pipelock_verify_bin());
    cmd.arg(&f.file).args(["--key", &f.key]);
    if f.is_chain() {
        // pipelock-verify's own default session id is "proxy".
        cmd.args(["--session-id", f.session_id.as_deref().unwrap_or("proxy")]);
        for e in &f.endorsements {
            cmd.arg("--rotation-endorsement").arg(e);
        }
    }
    let out = cmd.output().expect("run pipelock-verify");
    let code = out
        .status
        .code()
        .expect("pipelock-verify exited by a signal");
    assert!(code == 0 || code == 1, "pipelock-verify exit {code}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (code == 0, text)
}

#[test]
fn every_fixture_gets_its_expected_verdict_under_the_corpus_policy() {
    let mut wrong = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for f in fixtures() {
        let (code, out) = sigil_verify(&f, &CORPUS_POLICY);
        let want = if f.accept { 0 } else { 1 };
        if code != want {
            wrong.push(format!("{}: exit {code}, want {want}\n{out}", f.label));
        }
        if f.accept {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(accepted > 20 && rejected > 15, "{accepted} {rejected}");
}

#[test]
fn pipelock_compatible_mode_agrees_with_pipelock_verify_on_every_fixture() {
    let mut differ = Vec::new();
    let mut pipelock_rejects = 0;
    for f in fixtures() {
        let (ok, py) = pipelock(&f);
        let (code, rs) = sigil_verify(&f, &["--pipelock-compatible"]);
        assert!(
            code == 0 || code == 1,
            "{}: sigil exit {code}\n{rs}",
            f.label
        );
        if (code == 0) != ok {
            differ.push(format!(
                "{}: pipelock-verify {ok}, sigil exit {code}\n{py}\n{rs}",
                f.label
            ));
        }
        pipelock_rejects += usize::from(!ok);
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The comparison means something only if pipelock-verify rejects some.
    assert!(pipelock_rejects >= 10, "{pipelock_rejects}");
}

#[test]
fn the_corpus_policy_is_what_rejects_the_noted_fixtures() {
    // Without the stricter flags, sigil's default policy still rejects the
    // replay and NUL fixtures (sigil checks them by default) but not the
    // expired receipt nor the block-then-allow chain: those need the policy.
    let all = fixtures();
    let by_name = |n: &str| all.iter().find(|f| f.label.contains(n)).unwrap();
    let expired = by_name("m03-expired-timestamp");
    assert_eq!(sigil_verify(expired, &[]).0, 0);
    assert_eq!(sigil_verify(expired, &CORPUS_POLICY).0, 1);
    let reversal = by_name("m09-verdict-chain-mismatch");
    assert_eq!(sigil_verify(reversal, &[]).0, 0);
    assert_eq!(sigil_verify(reversal, &CORPUS_POLICY).0, 1);
    for n in [
        "m04-replay-duplicate-action-id",
        "m12-header-injection-null-byte",
    ] {
        assert_eq!(sigil_verify(by_name(n), &[]).0, 1, "{n}");
        assert_eq!(
            sigil_verify(by_name(n), &["--pipelock-compatible"]).0,
            0,
            "{n}"
        );
    }
}

fn code(args: &[&str]) -> (i32, String) {
    let out = sigil(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exit code"), text)
}

#[test]
fn usage_errors_exit_64_and_unreadable_files_exit_2() {
    let golden = vectors().join("pipelock/sdk/valid-chain.jsonl");
    let golden = golden.to_str().unwrap();
    let key = "4655a7e605c12ebb00a46037881c33c5bca5eb74b45a02e8e7261a7ff5a21678";
    // The file is valid with its key, so only the argument is wrong below.
    assert_eq!(code(&["verify", "chain", golden, "--key", key]).0, 0);

    for args in [
        vec!["verify", "chain"],
        vec!["verify", "receipt"],
        vec!["verify", "chain", golden, "--key", "nothex"],
        vec!["verify", "chain", golden, "--key", &key[..62]],
        vec!["verify", "receipt", golden, "--key", "zz"],
        vec!["verify", "chain", golden, "--at", "yesterday"],
        vec!["verify", "chain", golden, "--no-such-flag"],
        vec!["verify"],
    ] {
        let (c, out) = code(&args);
        assert_eq!(c, 64, "{args:?}: {out}");
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let missing = missing.to_str().unwrap();
    let a_dir = dir.path().to_str().unwrap();
    for args in [
        vec!["verify", "chain", missing, "--key", key],
        vec!["verify", "receipt", missing, "--key", key],
        vec!["verify", "chain", a_dir, "--key", key],
    ] {
        let (c, out) = code(&args);
        assert_eq!(c, 2, "{args:?}: {out}");
    }
    // A readable file that is not UTF-8 is not a receipt: invalid (1).
    let binary = dir.path().join("binary.jsonl");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let (c, out) = code(&["verify", "chain", binary.to_str().unwrap(), "--key", key]);
    assert_eq!(c, 1, "{out}");
}

/// Where pipelock-verify 0.4.1 refuses, sigil refuses too: a receipt
/// wrapped twice in recorder entries, and one endorsement given twice.
#[test]
fn what_pipelock_refuses_sigil_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors().join("pipelock");
    let receipt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(v.join("corpus/golden/01-allow-clean-get.json")).unwrap(),
    )
    .unwrap();
    let key = "890726e93f89e773fb3b4298271245a69c1884fd1003846c3358b8b65a2288fa";
    let wrap = |r: serde_json::Value| serde_json::json!({"type": "action_receipt", "detail": r});
    for (name, doc, accept) in [
        ("once.json", wrap(receipt.clone()), true),
        ("twice.json", wrap(wrap(receipt.clone())), false),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, doc.to_string()).unwrap();
        let pl = Command::new(pipelock_verify_bin())
            .arg(&path)
            .args(["--key", key])
            .output()
            .unwrap();
        let ours = sigil(&["verify", "receipt", path.to_str().unwrap(), "--key", key]);
        assert_eq!(
            pl.status.success(),
            accept,
            "pipelock-verify on {name}: {pl:?}"
        );
        assert_eq!(ours.status.success(), accept, "sigil on {name}: {ours:?}");
    }

    let chain = v.join("rotation/g1-rotated-close-count-valid.jsonl");
    let e = v.join("rotation/g1-rotation-endorsement.json");
    let root = "4655a7e605c12ebb00a46037881c33c5bca5eb74b45a02e8e7261a7ff5a21678";
    let (ok, out) = pipelock_verify(&chain, root, "conformance-session", &[e.clone(), e.clone()]);
    assert!(!ok, "pipelock-verify took one endorsement twice: {out}");
    let ours = sigil(&[
        "verify",
        "chain",
        chain.to_str().unwrap(),
        "--key",
        root,
        "--session-id",
        "conformance-session",
        "--rotation-endorsement",
        e.to_str().unwrap(),
        "--rotation-endorsement",
        e.to_str().unwrap(),
    ]);
    assert_eq!(ours.status.code(), Some(1), "{ours:?}");
    assert!(String::from_utf8_lossy(&ours.stdout).contains("given twice"));
}
