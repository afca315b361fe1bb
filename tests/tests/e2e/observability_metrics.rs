//! /metrics is Prometheus text that Prometheus's own parser reads, and its
//! counters move under load; gRPC health answers SERVING.

use std::collections::HashMap;
use std::process::Command;

use sigil_tests::{append_many, sigil_stdin, workspace, Daemon};

/// Parses the exposition with the prometheus_client Python package (the
/// reference parser) and returns sample name{labels} -> value.
fn scrape(http: &str) -> HashMap<String, f64> {
    let python = workspace().join(".venv/bin/python");
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics").read().decode()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let out = Command::new(&python)
        .args(["-c", script, http])
        .output()
        .expect("venv python (scripts/test.sh installs prometheus-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let before = scrape(&daemon.http);
    assert_eq!(get(&before, "sigil_token_up{backend=\"software\"}"), 1.0);

    append_many(&daemon.endpoint, &["m-a", "m-b"], 100, 4).await;
    let out = sigil_stdin(
        &["--endpoint", &daemon.endpoint, "append", "--chain", "m-a"],
        r#"{"target":"t"}"#,
    );
    assert!(!out.status.success());

    let after = scrape(&daemon.http);
    // 100 producer receipts plus the genesis open, per chain.
    assert_eq!(get(&after, "sigil_receipts_total{chain=\"m-a\"}"), 101.0);
    assert_eq!(get(&after, "sigil_receipts_total{chain=\"m-b\"}"), 101.0);
    assert!(
        get(&after, "sigil_append_seconds_count{}")
            >= get(&before, "sigil_append_seconds_count{}") + 200.0
    );
    assert!(get(&after, "sigil_sign_seconds_count{backend=\"software\"}") >= 202.0);
    assert!(get(&after, "sigil_batch_size_count{}") > 0.0);
    assert!(get(&after, "sigil_fsync_seconds_sum{}") > 0.0);
    assert_eq!(
        get(&after, "sigil_errors_total{code=\"INVALID_ARGUMENT\"}"),
        1.0
    );
    assert!(get(&after, "sigil_key_signatures{keyid=\"mediator.v1\"}") >= 200.0);
    assert!(after.contains_key("sigil_key_age_seconds{keyid=\"mediator.v1\"}"));
    assert_eq!(
        get(&after, "sigil_token_sessions_in_use{backend=\"software\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_answers_serving() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let channel = tonic::transport::Endpoint::from_shared(daemon.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "sigil.v1.Receipts"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_tie_a_refusal_to_its_log_line_and_no_secret_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let channel = tonic::transport::Endpoint::from_shared(daemon.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = sigil_proto::v1::receipts_client::ReceiptsClient::new(channel);
    let mut req = tonic::Request::new(sigil_proto::v1::AppendRequest {
        chain: "ids".into(),
        record_json: r#"{"action_type":"read"}"#.into(),
        correlation_id: 0,
    });
    req.metadata_mut()
        .insert("x-request-id", "req-4711-abc".parse().unwrap());
    let status = client.append(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "req-4711-abc"
    );
    drop(daemon);

    let log = std::fs::read_to_string(data.with_extension("sigild.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("req-4711-abc"))
        .expect("the refusal is logged with its request id");
    assert!(line.contains("record.target"), "{line}");
    // The software seed never reaches the log.
    let seeds = std::fs::read_dir(data.join("seeds")).unwrap();
    for seed in seeds {
        let bytes = std::fs::read(seed.unwrap().path()).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&hex));
    }
}

/// Logs written to a file (stderr not a terminal) carry no colour codes;
/// `--log-format json` gives one JSON object per line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_are_plain_text_or_json() {
    for (format, json) in [("text", false), ("json", true)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut daemon = Daemon::start(&data, &["--log-format", format]);
        let mut c = sigil_client::Client::connect(&daemon.endpoint)
            .await
            .unwrap();
        c.append("logs", &sigil_tests::record(1)).await.unwrap();
        assert!(daemon.terminate());
        let log = std::fs::read_to_string(data.with_extension("sigild.log")).unwrap();
        assert!(log.contains("signing key ready"), "{log}");
        assert!(
            !log.contains('\u{1b}'),
            "{format}: colour codes in a log file:\n{log}"
        );
        if json {
            for line in log.lines().filter(|l| l.starts_with('{')) {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}

/// A SignDigest counts one signature for the digest key (the digest) and
/// one for the chain key (the ledger receipt), so `max_signatures` rotates
/// each on its own count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_counted_against_the_key_that_made_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    daemon.create_key("digests").await;
    let mut c = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    for i in 0..3u8 {
        c.sign_digest("digests", &[i; 32]).await.unwrap();
    }
    let text = sigil_client::fetch::get(&format!("http://{}/metrics", daemon.http))
        .await
        .unwrap();
    let count = |keyid: &str| -> u64 {
        let prefix = format!("sigil_key_signatures{{keyid=\"{keyid}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(count("digests.v1"), 3);
    assert_eq!(count("mediator.v1"), 3, "the ledger's three receipts");
}
