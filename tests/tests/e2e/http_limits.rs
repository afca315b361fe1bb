//! The HTTP port cannot be held: a connection cap, a header timeout, and
//! gRPC appends unaffected while slow clients sit on it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sigil_client::Client;
use sigil_tests::{record, Daemon};

/// Reads until the server closes the connection (or 20 s pass); true when
/// it closed.
fn closed_by_server(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn partial_request(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: sigil\r\n")
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_capped_and_timed_out_and_grpc_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        "[http]\nmax_connections = 3\nheader_timeout_seconds = 1\nconnection_timeout_seconds = 30\n",
    )
    .unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let addr = daemon.http.clone();

    // Three clients that never finish their headers fill the cap.
    let slow: Vec<TcpStream> = (0..3).map(|_| partial_request(&addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A fourth is closed at once instead of waiting.
    let extra = partial_request(&addr);
    assert!(
        closed_by_server(extra),
        "a connection over the cap stayed open"
    );
    // gRPC is not held up by any of this.
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    c.append("http-limits", &record(1)).await.unwrap();
    // The slow ones are closed by the header timeout.
    for s in slow {
        assert!(
            closed_by_server(s),
            "a client that never sent its headers stayed connected"
        );
    }
    // And the port serves again.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: sigil\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
