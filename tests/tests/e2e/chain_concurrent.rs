//! Many producers append to several chains at once over real gRPC; every
//! chain file must pass Pipelock's verifier and sigil's.

use std::collections::HashSet;

use sigil_client::Client;
use sigil_tests::{pipelock_verify, record, sigil, Daemon};

const PRODUCERS: usize = 8;
const PER_PRODUCER: usize = 1000;
const CHAINS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_producers_four_chains_verify_with_pipelock_and_sigil() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let endpoint = daemon.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&endpoint).await.unwrap();
            let mut acked = Vec::new();
            for i in 0..PER_PRODUCER {
                let chain = format!("chain-{}", (p + i) % CHAINS);
                let r = client
                    .append(&chain, &record(p * PER_PRODUCER + i))
                    .await
                    .unwrap();
                acked.push((chain, r.receipt_json));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), PRODUCERS * PER_PRODUCER);

    let key = daemon.active_key();
    let mut total = 0;
    for c in 0..CHAINS {
        let name = format!("chain-{c}");
        let path = daemon.chain_path(&name);
        let text = sigil_tests::without_seals(&std::fs::read_to_string(&path).unwrap());
        let lines: HashSet<&str> = text.lines().collect();
        let mine: Vec<_> = acked.iter().filter(|(ch, _)| *ch == name).collect();
        // Every acknowledged receipt is in its chain exactly as replied.
        for (_, receipt) in &mine {
            assert!(lines.contains(receipt.as_str()));
        }
        // The genesis open plus the producers' receipts.
        assert_eq!(text.lines().count(), mine.len() + 1);
        total += mine.len();

        let (ok, out) = pipelock_verify(&path, &key, &name, &[]);
        assert!(ok, "pipelock-verify rejected {name}: {out}");
        assert!(
            out.contains(&format!("Receipts:  {}", mine.len() + 1)),
            "{out}"
        );

        let out = sigil(&["verify", "chain", path.to_str().unwrap(), "--key", &key]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(total, PRODUCERS * PER_PRODUCER);
}
