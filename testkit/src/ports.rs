//! Free loopback ports. A port found free may be taken by another test
//! before it is bound: callers that start a server on one retry on failure.

use std::net::TcpListener;

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Two consecutive free loopback ports; returns the first.
pub fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = a.local_addr().expect("bound address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}
