//! The integration tests' one raw-bytes HTTP/1.1 sender. Everything else that calls a simulator
//! over HTTP goes through `replica-client`; this stays because tests must send what no real
//! client would (malformed, oversized or foreign-`Host` requests, pypsrp's envelope layout) and
//! see the answer as bytes: status line, every header, the body as sent.
//!
//! One request per connection (`Connection: close`). The body is written by a separate task, so
//! that a server answering before it has read everything (an oversized request) cannot deadlock
//! the test; the answer is whatever arrived before the server closed.

use serde_json::Value as Json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer as received (a chunked body already joined).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn bad(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

/// Sends `method path` with `headers` and `body` to `authority` (`127.0.0.1:PORT`). `Host` is
/// the authority unless `headers` names one. An error means no HTTP answer: the connection was
/// refused, or the server closed it without a status line.
pub async fn exchange(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let stream = TcpStream::connect(authority).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    // A test may send its own Host (DNS-rebinding checks); otherwise the address it dialled.
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (mut rd, mut wr) = stream.into_split();
    let mut payload = head.into_bytes();
    payload.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        // The server may close early on an oversized body; its answer is what counts.
        let _ = wr.write_all(&payload).await;
        let _ = wr.flush().await;
        wr
    });
    let mut raw = Vec::new();
    let read = rd.read_to_end(&mut raw).await;
    drop(writer.await);
    if let Err(e) = read
        && raw.is_empty()
    {
        return Err(e);
    }
    parse(&raw)
}

/// [`exchange`] from synchronous code, on a runtime of its own, given up after 30 s.
pub fn blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let authority = addr.to_string();
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            exchange(&authority, method, path, headers, body),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 30 s"))?
    })
}

fn parse(raw: &[u8]) -> std::io::Result<Resp> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no HTTP answer (connection closed)"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    }) {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
