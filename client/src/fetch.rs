//! A minimal HTTP GET for the key directory and the receipt log, so a
//! verifier can fetch them without trusting anything but the pinned keys
//! it checks them against.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::ClientError;

/// Largest body accepted (a directory, a checkpoint, a tile).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How long a connect or a read may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// GETs `url` (`http://host:port/path`) and returns the body of a 200 as
/// text.
pub async fn get(url: &str) -> Result<String, ClientError> {
    let owned = url.to_owned();
    let body = tokio::task::spawn_blocking(move || get_bytes(&owned))
        .await
        .map_err(|e| ClientError::Fetch {
            url: url.to_owned(),
            reason: e.to_string(),
        })??;
    let body = body.ok_or_else(|| ClientError::Fetch {
        url: url.to_owned(),
        reason: "HTTP status 404".into(),
    })?;
    String::from_utf8(body).map_err(|_| ClientError::Fetch {
        url: url.to_owned(),
        reason: "body is not UTF-8".into(),
    })
}

/// GETs `url` (`http://host:port/path`), blocking: the body of a 200, or
/// `None` for a 404.
pub fn get_bytes(url: &str) -> Result<Option<Vec<u8>>, ClientError> {
    let fail = |reason: &str| ClientError::Fetch {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        fail("only http:// URLs are supported; fetch https with curl and pass the file")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| fail(&e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail(&e.to_string()))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| fail(&e.to_string()))?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| fail(&e.to_string()))?;
    let mut buf = Vec::new();
    stream
        .take(MAX_BODY as u64 + 64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| fail(&e.to_string()))?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("no HTTP header"))?;
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| fail("header is not UTF-8"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status == "404" {
        return Ok(None);
    }
    if status != "200" {
        return Err(fail(&format!("HTTP status {status}")));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(fail("chunked responses are not supported"));
    }
    let body = &buf[head_end + 4..];
    if body.len() > MAX_BODY {
        return Err(fail("body larger than 4 MiB"));
    }
    Ok(Some(body.to_vec()))
}
