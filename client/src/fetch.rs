//! A minimal HTTP GET for the key directory, so a verifier can fetch it
//! without trusting anything but the pinned keys it checks it against.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ClientError;

/// Largest directory accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// GETs `url` (`http://host:port/path`) and returns the body of a 200.
pub async fn get(url: &str) -> Result<String, ClientError> {
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
    let mut stream = TcpStream::connect(authority)
        .await
        .map_err(|e| fail(&e.to_string()))?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| fail(&e.to_string()))?;
    let mut buf = Vec::new();
    stream
        .take(MAX_BODY as u64 + 64 * 1024)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| fail(&e.to_string()))?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("no HTTP header"))?;
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| fail("header is not UTF-8"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
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
        return Err(fail("directory larger than 4 MiB"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| fail("body is not UTF-8"))
}
