//! A caller over its rate limit gets RESOURCE_EXHAUSTED, and the refused
//! appends leave nothing in the chain.

use sigil_client::{Client, ClientError};
use sigil_tests::{pipelock_verify, record, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_over_the_rate_limit_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "[limits]\nrate_per_second = 5\nburst = 10\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let (mut ok, mut refused) = (0, 0);
    for i in 0..40 {
        match client.append("r", &record(i)).await {
            Ok(_) => ok += 1,
            Err(ClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("rate limit"), "{}", s.message());
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // A burst of 10 plus what 5/s refills while 40 calls run.
    assert!((10..30).contains(&ok), "{ok} accepted");
    assert_eq!(ok + refused, 40);
    let text = std::fs::read_to_string(daemon.chain_path("r")).unwrap();
    assert_eq!(
        text.lines().count(),
        ok + 1,
        "only accepted appends are in the chain"
    );
    let key = daemon.active_key();
    let (valid, out) = pipelock_verify(&daemon.chain_path("r"), &key, "r", &[]);
    assert!(valid, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_beyond_the_maximum_and_oversized_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        "[chains]\nmax_chains = 2\nledger_reserve = 0\n[limits]\nmax_message_bytes = 4096\n",
    )
    .unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    client.append("one", &record(1)).await.unwrap();
    client.append("two", &record(2)).await.unwrap();
    match client.append("three", &record(3)).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message().contains("maximum of 2 chains"),
                "{}",
                s.message()
            );
        }
        other => panic!("a third chain was accepted: {:?}", other.map(|r| r.chain)),
    }
    assert!(!daemon.chain_path("three").exists());

    // A gRPC message over max_message_bytes is refused before it is read.
    let big = format!(
        r#"{{"action_type":"read","target":"t","verdict":"allow","transport":"https","intent":"{}"}}"#,
        "x".repeat(8000)
    );
    let before = std::fs::read(daemon.chain_path("one")).unwrap();
    match client.append("one", &big).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}"),
        other => panic!(
            "an oversized message was accepted: {:?}",
            other.map(|r| r.chain)
        ),
    }
    assert_eq!(std::fs::read(daemon.chain_path("one")).unwrap(), before);
}

/// Producers filling the daemon leave room for SignDigest's ledgers, and one
/// identity cannot take every chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_capacity_keeps_room_for_ledgers_and_caps_each_identity() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "[chains]\nmax_chains = 4\nledger_reserve = 1\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    for name in ["p1", "p2", "p3"] {
        client.append(name, &record(1)).await.unwrap();
    }
    match client.append("p4", &record(4)).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(s.message().contains("kept for SignDigest ledgers"), "{s:?}");
        }
        other => panic!(
            "a producer took the ledger's room: {:?}",
            other.map(|r| r.chain)
        ),
    }
    daemon.admin().await.create_key("digests").await.unwrap();
    client.sign_digest("digests", &[9u8; 32]).await.unwrap();
    assert!(daemon.chain_path("sigil.ledger.digests").exists());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "[chains]\nmax_per_identity = 2\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    client.append("a", &record(1)).await.unwrap();
    client.append("b", &record(2)).await.unwrap();
    client.append("a", &record(3)).await.unwrap();
    match client.append("c", &record(4)).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message().contains("local may create at most 2 chains"),
                "{s:?}"
            );
        }
        other => panic!(
            "an identity went over its quota: {:?}",
            other.map(|r| r.chain)
        ),
    }
    assert!(!daemon.chain_path("c").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_records_are_bounded_daemon_wide() {
    // A budget smaller than one record: one append at a time is queued,
    // the others are refused at once instead of taking memory.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "[limits]\nqueued_record_bytes = 100\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let mut tasks = Vec::new();
    for i in 0..64 {
        let endpoint = daemon.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&endpoint).await.unwrap();
            c.append("q", &record(i)).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(
                    s.message().contains("queued_record_bytes"),
                    "{}",
                    s.message()
                );
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} accepted, {refused} refused");
    let receipts = sigil_tests::chain_receipts(&daemon.chain_path("q"));
    let producer = receipts
        .iter()
        .filter(|(_, r)| r["action_record"].get("session_control").is_none())
        .count();
    assert_eq!(
        producer, ok,
        "exactly the accepted appends are in the chain"
    );
    // The budget comes back with each reply.
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    for i in 100..105 {
        c.append("q", &record(i)).await.unwrap();
    }
}
