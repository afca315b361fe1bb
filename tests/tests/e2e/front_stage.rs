//! Every RPC passes one front stage, whatever its service: the request id
//! (the client's `x-request-id`, or a new UUIDv7) is echoed, and a refusal
//! is counted by gRPC code and logged with that id.

use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::receipts_client::ReceiptsClient;
use sigil_proto::v1::{AppendRequest, CreateKeyRequest, GetDirectoryRequest, SignDigestRequest};
use sigil_tests::Daemon;
use tonic::metadata::MetadataMap;

fn with_id<T>(msg: T, id: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    req
}

fn request_id(m: &MetadataMap) -> String {
    m.get("x-request-id")
        .expect("x-request-id echoed")
        .to_str()
        .unwrap()
        .to_owned()
}

fn errors(metrics: &str, code: &str) -> u64 {
    let prefix = format!("sigil_errors_total{{code=\"{code}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_gets_a_request_id_and_its_refusal_is_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let channel = tonic::transport::Endpoint::from_shared(daemon.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut receipts = ReceiptsClient::new(channel.clone());
    let mut admin = KeyAdminClient::new(channel);

    // SignDigest: a digest of the wrong length.
    let sd = SignDigestRequest {
        key: "digests".into(),
        digest: vec![1; 5],
    };
    let status = receipts
        .sign_digest(with_id(sd, "rid-sign-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(request_id(status.metadata()), "rid-sign-1");

    // KeyAdmin over TCP without TLS: administered on the socket only.
    let ck = CreateKeyRequest { name: "x".into() };
    let status = admin
        .create_key(with_id(ck, "rid-admin-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(request_id(status.metadata()), "rid-admin-1");
    assert!(status.message().contains("admin socket"), "{status:?}");

    // AppendStream: the stream's own reply carries the id.
    let one = AppendRequest {
        chain: "front".into(),
        record_json: sigil_tests::record(1),
        correlation_id: 7,
    };
    let resp = receipts
        .append_stream(with_id(tokio_stream::iter(vec![one]), "rid-stream-1"))
        .await
        .unwrap();
    assert_eq!(request_id(resp.metadata()), "rid-stream-1");
    let mut replies = resp.into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert_eq!(reply.correlation_id, 7);

    // A call without an id gets a new UUIDv7.
    let resp = admin.get_directory(GetDirectoryRequest {}).await.unwrap();
    let made = request_id(resp.metadata());
    assert_eq!(made.len(), 36, "{made}");
    assert_eq!(made.as_bytes()[14], b'7', "not a UUIDv7: {made}");

    let metrics = sigil_client::fetch::get(&format!("http://{}/metrics", daemon.http))
        .await
        .unwrap();
    assert_eq!(errors(&metrics, "INVALID_ARGUMENT"), 1, "{metrics}");
    assert_eq!(errors(&metrics, "PERMISSION_DENIED"), 1, "{metrics}");

    drop(replies);
    assert!(daemon.terminate());
    let log = std::fs::read_to_string(data.with_extension("sigild.log")).unwrap();
    for (id, code) in [
        ("rid-sign-1", "InvalidArgument"),
        ("rid-admin-1", "PermissionDenied"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(id) && l.contains("request refused"))
            .unwrap_or_else(|| panic!("no refusal logged for {id}:\n{log}"));
        assert!(line.contains(code), "{line}");
    }
}
