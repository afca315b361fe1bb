//! mTLS identities and roles: each role boundary is refused with
//! PERMISSION_DENIED or UNAUTHENTICATED and changes nothing.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use sigil_client::{Client, ClientError, ClientTls};
use sigil_tests::{record, Daemon};
use tonic::Code;

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Writes `<dir>/<name>.crt` and `.key` for a leaf with these SANs.
    fn leaf(&self, dir: &Path, name: &str, dns: &[&str], uri: Option<&str>) {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if let Some(u) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(u.try_into().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.ca.pem()).unwrap();
    }
}

fn tls(dir: &Path, who: Option<&str>) -> ClientTls {
    ClientTls {
        ca: Some(dir.join("ca.crt")),
        cert: who.map(|w| dir.join(format!("{w}.crt"))),
        key: who.map(|w| dir.join(format!("{w}.key"))),
    }
}

async fn client(endpoint: &str, dir: &Path, who: Option<&str>) -> Result<Client, ClientError> {
    Client::connect_with(endpoint, Some(&tls(dir, who))).await
}

fn code<T>(r: Result<T, ClientError>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(ClientError::Status(s)) => s.code(),
        Err(e) => panic!("not a status: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_boundary_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("sigil test CA");
    pki.write_ca(&d.join("ca.crt"));
    pki.leaf(d, "server", &["localhost", "127.0.0.1"], None);
    pki.leaf(d, "producer", &[], Some("spiffe://test/producer"));
    pki.leaf(d, "admin", &["admin.test"], None);
    pki.leaf(d, "reader", &[], Some("spiffe://test/reader"));
    pki.leaf(d, "stranger", &["stranger.test"], None);
    let rogue = Pki::new("another CA");
    rogue.leaf(d, "rogue", &[], Some("spiffe://test/producer"));

    let config = d.join("sigild.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[tls]
cert = "{d}/server.crt"
key = "{d}/server.key"
client_ca = "{d}/ca.crt"

[[identities]]
id = "spiffe://test/producer"
roles = ["producer"]
chains = ["p-*"]
keys = ["digests"]

[[identities]]
id = "admin.test"
roles = ["admin"]

[[identities]]
id = "spiffe://test/reader"
roles = ["reader"]
"#,
            d = d.display()
        ),
    )
    .unwrap();
    let data = d.join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let endpoint = daemon.endpoint.replace("http://", "https://");

    // The admin makes a digest key; the producer appends to its chains and
    // signs with that key.
    let mut admin = client(&endpoint, d, Some("admin")).await.unwrap();
    admin.create_key("digests").await.unwrap();
    let mut producer = client(&endpoint, d, Some("producer")).await.unwrap();
    for i in 0..3 {
        producer.append("p-1", &record(i)).await.unwrap();
    }
    producer.sign_digest("digests", &[1u8; 32]).await.unwrap();
    let chain = std::fs::read(daemon.chain_path("p-1")).unwrap();
    let keys = std::fs::read(data.join("keys.json")).unwrap();

    // ... and nothing else.
    assert_eq!(
        code(producer.append("other", &record(9)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(producer.sign_digest("other", &[1u8; 32]).await),
        Code::PermissionDenied
    );
    assert_eq!(code(producer.rotate_key("").await), Code::PermissionDenied);
    assert_eq!(
        code(producer.revoke_key("mediator", 1, "x", "").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(producer.create_key("k2").await),
        Code::PermissionDenied
    );

    // The reader reads the directory only.
    let mut reader = client(&endpoint, d, Some("reader")).await.unwrap();
    assert!(reader.directory().await.unwrap().contains("mediator.v1"));
    assert_eq!(code(reader.list_keys().await), Code::PermissionDenied);
    assert_eq!(
        code(reader.append("p-1", &record(10)).await),
        Code::PermissionDenied
    );
    assert_eq!(code(reader.rotate_key("").await), Code::PermissionDenied);

    // The admin manages keys but appends nothing.
    assert_eq!(
        code(admin.append("p-1", &record(11)).await),
        Code::PermissionDenied
    );
    assert!(admin.list_keys().await.unwrap().contains("mediator.v1"));

    // No certificate, or one whose identity has no grants.
    let mut anonymous = client(&endpoint, d, None).await.unwrap();
    assert_eq!(
        code(anonymous.append("p-1", &record(12)).await),
        Code::Unauthenticated
    );
    assert_eq!(code(anonymous.directory().await), Code::Unauthenticated);
    let mut stranger = client(&endpoint, d, Some("stranger")).await.unwrap();
    assert_eq!(
        code(stranger.append("p-1", &record(13)).await),
        Code::PermissionDenied
    );

    // A certificate from another CA does not get through the handshake.
    let rogue_result = match client(&endpoint, d, Some("rogue")).await {
        Ok(mut c) => c.append("p-1", &record(14)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        rogue_result.is_err(),
        "a certificate from an untrusted CA was accepted"
    );
    // Plain text to the TLS port fails too.
    let plain = match Client::connect(&daemon.endpoint).await {
        Ok(mut c) => c.append("p-1", &record(15)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(plain.is_err());

    // Nothing changed.
    assert_eq!(std::fs::read(daemon.chain_path("p-1")).unwrap(), chain);
    assert_eq!(std::fs::read(data.join("keys.json")).unwrap(), keys);
    assert!(!daemon.chain_path("other").exists());

    // The admin's rotation goes through.
    let r = admin.rotate_key("").await.unwrap();
    assert_eq!(r.keyid, "mediator.v2");
}

#[test]
fn without_tls_sigild_refuses_a_non_loopback_listener_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(sigil_tests::bin("sigild"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--grpc-listen", "0.0.0.0:0", "--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert!(
        !dir.path().join("data/chains").exists(),
        "nothing may be created"
    );
}
