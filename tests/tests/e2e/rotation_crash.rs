//! A crash at any step of a rotation leaves a state the next start
//! completes (or, before the successor is recorded, never began): never a
//! half-rotated chain. Each test kills sigild at one crash point
//! (`SIGIL_CRASH_AT`) during `sigil keys rotate` and restarts it without.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sigil_client::Client;
use sigil_tests::{
    boundaries, chain_receipts, directory_keys, endorsement_entries, export_endorsements,
    pipelock_verify, record, sigil, sigil_verify_chain, Daemon,
};

const CHAINS: [&str; 3] = ["cr-0", "cr-1", "cr-2"];

/// Both verifiers accept chain `name` from `root`, with the endorsements
/// the file holds.
fn assert_verifies(daemon: &Daemon, name: &str, root: &str, tmp: &Path) {
    let path = daemon.chain_path(name);
    let out = tmp.join(format!("ends-{name}-{}", rand_suffix()));
    let ends = export_endorsements(&path, &out);
    let (ok, msg) = pipelock_verify(&path, root, name, &ends);
    assert!(ok, "pipelock-verify rejected {name}: {msg}");
    let (code, msg) = sigil_verify_chain(&path, &["--key", root]);
    assert_eq!(code, 0, "sigil verify {name}: {msg}");
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&path, &["--key", root, "--directory", &url]);
    assert_eq!(code, 0, "sigil verify --directory {name}: {msg}");
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn append_each(endpoint: &str, chains: &[&str], n: usize, base: usize) -> Vec<String> {
    let mut client = Client::connect(endpoint).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..n {
        for (c, name) in chains.iter().enumerate() {
            let r = client
                .append(name, &record(base + i * 10 + c))
                .await
                .unwrap();
            acked.push(r.receipt_json);
        }
    }
    acked
}

async fn rotate_cli(daemon: &Daemon) -> std::process::Output {
    let sock = daemon.admin_socket();
    tokio::task::spawn_blocking(move || {
        sigil(&["--admin-socket", sock.to_str().unwrap(), "keys", "rotate"])
    })
    .await
    .unwrap()
}

/// Crashes during a rotation at `point`, restarts, and checks the result.
/// `completed`: whether the design says the rotation must be completed at
/// the next start (true once the successor is recorded as pending).
/// `crossed`: how many chains hold their boundary when sigild dies.
async fn crash_at(point: &str, completed: bool, crossed: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `rotate.generated` also fires when a first start generates version
    // 1, so the key exists before the crash point is armed.
    assert!(Daemon::start(&data, &[]).terminate());
    let mut daemon = Daemon::try_start_env(&data, &[], &[("SIGIL_CRASH_AT", point)])
        .unwrap_or_else(|e| panic!("sigild did not start: {e}"));
    let root = daemon.active_key();
    let mut acked = append_each(&daemon.endpoint, &CHAINS, 4, 0).await;

    let out = rotate_cli(&daemon).await;
    assert!(
        !out.status.success(),
        "{point}: the rotation succeeded although sigild should have died"
    );
    assert!(
        daemon.wait_exited(Duration::from_secs(30)),
        "{point}: sigild is still running"
    );
    let log = std::fs::read_to_string(data.with_extension("sigild.log")).unwrap();
    assert!(
        log.contains(&format!("crash point {point}")),
        "{point}: sigild did not die at the crash point: {log}"
    );
    let before: Vec<Vec<u8>> = CHAINS
        .iter()
        .map(|c| std::fs::read(daemon.chain_path(c)).unwrap())
        .collect();
    let had_boundary = before
        .iter()
        .filter(|b| String::from_utf8_lossy(b).contains("key_transition"))
        .count();
    assert_eq!(
        had_boundary, crossed,
        "{point}: chains crossed before the crash"
    );

    let daemon = Daemon::start(&data, &[]);
    let active = daemon.active_key();
    let keys = directory_keys(&daemon.endpoint);
    let actives: Vec<_> = keys.iter().filter(|k| k["state"] == "active").collect();
    assert_eq!(actives.len(), 1, "{point}: active versions: {keys:?}");
    assert_eq!(actives[0]["public_key"], active.as_str());
    if completed {
        assert_ne!(
            active, root,
            "{point}: the recorded rotation was rolled back"
        );
        let old = keys
            .iter()
            .find(|k| k["public_key"] == root.as_str())
            .unwrap();
        assert_eq!(old["state"], "retired", "{point}: {old}");
    } else {
        assert_eq!(
            active, root,
            "{point}: a rotation never recorded took effect"
        );
    }
    for (name, before) in CHAINS.iter().zip(&before) {
        let path = daemon.chain_path(name);
        let after = std::fs::read(&path).unwrap();
        // Whole lines from before the crash stay (a lone endorsement at the
        // end, never acknowledged, may go).
        let text = String::from_utf8_lossy(before);
        for line in text.lines().filter(|l| !l.contains("rotation_endorsement")) {
            let after = String::from_utf8_lossy(&after);
            assert!(after.contains(line), "{point}: {name} lost a line");
        }
        let b = boundaries(&path);
        if active == root {
            assert!(b.is_empty(), "{point}: {name} crossed to no active key");
            assert_eq!(endorsement_entries(&path), 0, "{point}: {name}");
        } else {
            assert_eq!(b.len(), 1, "{point}: {name} boundaries");
            assert_eq!(b[0].0["key_transition"]["prior_signer_key"], root.as_str());
            assert_eq!(b[0].1, active, "{point}: {name} crossed to another key");
            assert_eq!(endorsement_entries(&path), 1, "{point}: {name}");
        }
        assert_verifies(&daemon, name, &root, dir.path());
    }
    let all: String = CHAINS
        .iter()
        .map(|c| std::fs::read_to_string(daemon.chain_path(c)).unwrap())
        .collect();
    for r in &acked {
        assert!(
            all.contains(r.as_str()),
            "{point}: lost an acknowledged receipt"
        );
    }

    // Appends continue, signed by the active key, and a further rotation
    // works (after rotate.generated it adopts the orphaned successor).
    acked = append_each(&daemon.endpoint, &CHAINS, 2, 100).await;
    for r in &acked {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        assert_eq!(v["signer_key"], active.as_str(), "{point}");
    }
    let out = rotate_cli(&daemon).await;
    assert!(
        out.status.success(),
        "{point}: rotation after restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    append_each(&daemon.endpoint, &CHAINS, 1, 200).await;
    let versions = directory_keys(&daemon.endpoint).len();
    assert_eq!(versions, if completed { 3 } else { 2 }, "{point}");
    for name in CHAINS {
        assert_verifies(&daemon, name, &root, dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_generating_the_successor() {
    crash_at("rotate.generated", false, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_recording_the_successor_as_pending() {
    crash_at("rotate.pending", true, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_first_chain_crossed() {
    crash_at("rotate.chain_boundary", true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_every_chain_crossed_before_retiring() {
    crash_at("rotate.boundaries", true, CHAINS.len()).await;
}

/// A rotation_endorsement entry alone at the end of a chain (its boundary
/// receipt never written, or torn) was never acknowledged: the next start
/// cuts it, and the chain goes on and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_endorsement_at_the_end_is_cut_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_each(&daemon.endpoint, &["torn-a", "torn-b"], 3, 0).await;
    assert!(rotate_cli(&daemon).await.status.success());
    append_each(&daemon.endpoint, &["torn-a", "torn-b"], 2, 50).await;
    assert!(daemon.terminate());

    // A real endorsement entry and the boundary after it, from torn-a.
    let a = std::fs::read_to_string(daemon.chain_path("torn-a")).unwrap();
    let lines: Vec<&str> = a.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"rotation_endorsement\""))
        .unwrap();
    let (entry, boundary) = (lines[at], lines[at + 1]);
    let half = &boundary[..boundary.len() / 2];
    let tails = [format!("{entry}\n"), format!("{entry}\n{half}")];

    for (n, tail) in tails.iter().enumerate() {
        let path = daemon.chain_path("torn-b");
        let whole = std::fs::read(&path).unwrap();
        let entries = endorsement_entries(&path);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(tail.as_bytes())
            .unwrap();
        daemon = Daemon::start(&data, &[]);
        let after = std::fs::read(&path).unwrap();
        assert!(after.starts_with(&whole), "case {n}: whole lines changed");
        let rest = String::from_utf8(after[whole.len()..].to_vec()).unwrap();
        let rest = sigil_tests::without_seals(&rest);
        assert_eq!(rest.lines().count(), 1, "case {n}: {rest}");
        assert!(!rest.contains("rotation_endorsement"), "case {n}: {rest}");
        assert_eq!(endorsement_entries(&path), entries, "case {n}");
        let last = chain_receipts(&path).pop().unwrap().1;
        assert_eq!(
            last["action_record"]["session_control"]["kind"],
            "session_open"
        );
        assert!(last["action_record"]["key_transition"].is_null());

        let mut client = Client::connect(&daemon.endpoint).await.unwrap();
        let r = client.append("torn-b", &record(1000 + n)).await.unwrap();
        let text = sigil_tests::without_seals(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(text.lines().last(), Some(r.receipt_json.as_str()));
        for name in ["torn-a", "torn-b"] {
            assert_verifies(&daemon, name, &root, dir.path());
        }
        drop(client);
        assert!(daemon.terminate());
    }
}
