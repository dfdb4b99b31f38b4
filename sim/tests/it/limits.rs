//! Hostile clients against the limits: a connection flood over `max_connections`, a 64 KiB
//! header, a client that stalls mid-header or mid-body, 5,000 enumerations never pulled, and
//! 10,000 jobs under a short retention. Each ends with the simulator still answering.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr_of(sim: &replica_sim::SimHandle, host: &str) -> SocketAddr {
    *sim.addrs().get(host).expect("host listens")
}

/// A whole request (head and body) as one byte string.
fn raw_request(addr: SocketAddr, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /wsman HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        basic(ADMIN.0, ADMIN.1),
        body.len()
    )
    .into_bytes()
}

/// Reads until the server closes (EOF or reset) or `secs` pass; returns what came and how
/// long it took. `None`: still open after `secs`.
async fn read_until_closed(s: &mut TcpStream, secs: u64) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = Duration::from_secs(secs).checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Identify on a fresh connection: the HTTP status, or `None` when the server closed it
/// unanswered.
async fn identify_status(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.write_all(&raw_request(addr, "", &identify_body())).await;
    let (got, _) = read_until_closed(&mut s, 10).await?;
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once_and_slots_come_back() {
    within(30, async {
        let mut config = config();
        config.limits.max_connections = 3;
        let sim = start_with(config).await;
        let addr = addr_of(&sim, "HV-REPLICA");
        // Three idle connections hold every slot (accepted in order, before the next one).
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(&raw_request(addr, "", &identify_body())).await;
            let (got, took) = read_until_closed(&mut s, 5)
                .await
                .expect("a connection over the limit is closed, not left waiting");
            assert!(got.is_empty(), "answered over the limit: {got:?}");
            assert!(took < Duration::from_secs(4), "closed after {took:?}");
        }
        // The other host has its own listener and its own slots.
        assert_eq!(
            identify_status(addr_of(&sim, "HV-PRIMARY")).await,
            Some(200)
        );
        // A closed connection gives its slot back.
        drop(idle.pop());
        let mut status = None;
        for _ in 0..50 {
            status = identify_status(addr).await;
            if status.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, Some(200));
    })
    .await;
}

#[tokio::test]
async fn a_64_kib_header_gets_431_and_the_server_goes_on() {
    within(20, async {
        let sim = start().await;
        let addr = addr_of(&sim, "HV-REPLICA");
        let big = format!("X-Padding: {}\r\n", "a".repeat(64 * 1024));
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s
            .write_all(&raw_request(addr, &big, &identify_body()))
            .await;
        let (got, _) = read_until_closed(&mut s, 10).await.expect("closed");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 431"),
            "{text}"
        );
        // Many headers under the limit in total are fine.
        let many: String = (0..40)
            .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(1000)))
            .collect();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s
            .write_all(&raw_request(addr, &many, &identify_body()))
            .await;
        let (got, _) = read_until_closed(&mut s, 10).await.expect("closed");
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stall_are_disconnected() {
    within(30, async {
        let mut config = config();
        config.limits.header_read_timeout_ms = 700;
        config.limits.body_read_timeout_ms = 700;
        let sim = start_with(config).await;
        let addr = addr_of(&sim, "HV-REPLICA");

        // Half a header, then nothing.
        let mut head = TcpStream::connect(addr).await.expect("connect");
        head.write_all(b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .expect("write");
        // A whole header and half the body, then nothing.
        let full = raw_request(addr, "", &identify_body());
        let mut body = TcpStream::connect(addr).await.expect("connect");
        body.write_all(&full[..full.len() - identify_body().len() / 2])
            .await
            .expect("write");
        // An idle keep-alive connection that never sends anything.
        let mut idle = TcpStream::connect(addr).await.expect("connect");

        let (got, took) = read_until_closed(&mut head, 10)
            .await
            .expect("disconnected");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        assert!(took >= Duration::from_millis(500), "{took:?}");
        let (got, _) = read_until_closed(&mut body, 10)
            .await
            .expect("disconnected");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        let (got, _) = read_until_closed(&mut idle, 10)
            .await
            .expect("disconnected");
        assert!(got.is_empty());
        // Nothing stalled the server.
        assert_eq!(identify_status(addr).await, Some(200));
    })
    .await;
}

/// The body timeout is not moved by the bytes that keep coming: a client that sends its body
/// a byte at a time, each well inside the timeout, is still answered 408 once the timeout has
/// passed. (The server arms the deadline on its first wait for the body; re-arming it on
/// every frame would let such a client hold its connection for as long as it liked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_a_byte_at_a_time_still_times_out() {
    within(120, async {
        let mut config = config();
        config.limits.body_read_timeout_ms = 700;
        let sim = start_with(config).await;
        let addr = addr_of(&sim, "HV-REPLICA");
        let body = identify_body();
        let full = raw_request(addr, "", &body);
        let head = full.len() - body.len();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.write_all(&full[..head]).await.expect("write");
        // One byte every 50 ms: the whole body would take tens of seconds.
        let mut rest = full[head..].iter();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                n = s.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(b) = rest.next()
                        && s.write_all(&[*b]).await.is_ok()
                    {
                        sent += 1;
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            sent >= 2,
            "the body was still coming when it timed out ({sent} bytes)"
        );
        assert!(sent < body.len(), "{sent} of {} bytes", body.len());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_enumerations_never_pulled_stay_bounded() {
    within(90, async {
        let mut config = config();
        config.limits.max_enum_contexts = 64;
        let sim = start_with(config).await;
        let url = sim.url("HV-REPLICA");
        let body = r#"<n:Enumerate><wsman:OptimizeEnumeration/><wsman:MaxElements>1</wsman:MaxElements></n:Enumerate>"#;
        let resource = format!("{V2}Msvm_ComputerSystem");
        // 8 clients, keep-alive off, 625 enumerations each; every one leaves a context.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let c = Client::new(url.clone());
            let resource = resource.clone();
            tasks.push(tokio::spawn(async move {
                let mut contexts = Vec::new();
                for _ in 0..625 {
                    let r = c.ok(envelope(ENUMERATE, &resource, &[], "", body)).await;
                    let ctx = text_of(&r.doc(), ENUMERATION, "EnumerationContext");
                    contexts.push(ctx.expect("a context for the items left"));
                }
                contexts
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        assert_eq!(all.len(), 5000);
        let contexts = || sim.world("default").enumeration_contexts().expect("count");
        let held = contexts();
        assert!(held <= 64, "{held} contexts held");
        // The oldest were dropped; the newest still pulls.
        let c = Client::new(url);
        let pull = |ctx: &str| {
            envelope(
                PULL,
                &resource,
                &[],
                "",
                &format!("<n:Pull><n:EnumerationContext>{ctx}</n:EnumerationContext></n:Pull>"),
            )
        };
        let r = c.send(&pull(&all[0]).0).await;
        assert_eq!(
            fault_of(&r).subcode.map(|s| s.1).as_deref(),
            Some("InvalidEnumerationContext")
        );
        let r = c.ok(envelope(ENUMERATE, &resource, &[], "", body)).await;
        let newest = text_of(&r.doc(), ENUMERATION, "EnumerationContext").expect("a context");
        c.ok(pull(&newest)).await;
        assert!(contexts() <= 64);
    })
    .await;
}

#[tokio::test]
async fn a_body_over_the_configured_cap_is_the_encoding_limit_fault() {
    within(20, async {
        let mut config = config();
        config.limits.max_body_bytes = 16 * 1024;
        let sim = start_with(config).await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let padding = " ".repeat(20 * 1024);
        let (xml, _) = envelope(
            GET,
            &format!("{V2}Msvm_ComputerSystem"),
            &vm_keys(APP_01),
            "",
            &padding,
        );
        let r = c.send(&xml).await;
        assert_eq!(
            fault_of(&r).subcode.map(|s| s.1).as_deref(),
            Some("EncodingLimit")
        );
        // Under the cap, the same request is answered.
        let (xml, id) = envelope(
            GET,
            &format!("{V2}Msvm_ComputerSystem"),
            &vm_keys(APP_01),
            "",
            "",
        );
        c.ok((xml, id)).await;
    })
    .await;
}

/// The status line and headers of an answer that must come long before the body timeout.
async fn answer_to(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    // The body timeout is ten minutes: an answer within a minute was not a timeout.
    let (got, _) = read_until_closed(&mut s, 60)
        .await
        .expect("answered and closed long before the body timeout");
    String::from_utf8_lossy(&got).into_owned()
}

/// Regression (issue 14): an absurd Content-Length or chunk size waited for the body timeout
/// before a 408;
/// broken chunk framing was answered as a WS-Management `EncodingLimit` fault; and a request
/// without credentials had its whole body read before the 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_answered_at_once() {
    within(120, async {
        let mut config = config();
        config.limits.body_read_timeout_ms = 600_000;
        let sim = start_with(config).await;
        let addr = addr_of(&sim, "HV-PRIMARY");
        let head = |auth: bool, framing: &str| {
            format!(
                "POST /wsman HTTP/1.1\r\nHost: {addr}\r\n{}Content-Type: application/soap+xml;charset=UTF-8\r\n{framing}\r\n",
                if auth { format!("Authorization: {}\r\n", basic(ADMIN.0, ADMIN.1)) } else { String::new() }
            )
        };

        // 10^18 bytes announced, a few sent: the envelope-size fault at once, then close.
        let text = answer_to(
            addr,
            format!("{}<s:Envelope", head(true, "Content-Length: 1000000000000000000\r\n")).as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 500"), "{text}");
        assert!(text.contains("EncodingLimit"), "{text}");
        assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");

        // A chunk of 10^18 bytes announced, none sent: the envelope-size fault at once, then
        // close. Before, the request waited for the (here ten-minute) body timeout.
        let text = answer_to(
            addr,
            format!("{}DE0B6B3A7640000\r\n<s:Env", head(true, "Transfer-Encoding: chunked\r\n")).as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 500"), "{text}");
        assert!(text.contains("EncodingLimit"), "{text}");
        assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");

        // The same after a chunked request on the same connection that fits: the first is
        // answered, the second refused, so the mark follows the request it belongs to.
        let identify = identify_body();
        let small = format!("{:X}\r\n{identify}\r\n0\r\n\r\n", identify.len());
        let text = answer_to(
            addr,
            format!(
                "{h}{small}{h}7FFFFFFF\r\n",
                h = head(true, "Transfer-Encoding: chunked\r\n")
            )
            .as_bytes(),
        )
        .await;
        let (first, second) = text.split_at(text.find("HTTP/1.1 500").unwrap_or_else(|| panic!("{text}")));
        assert!(first.starts_with("HTTP/1.1 200"), "{text}");
        assert!(first.contains("IdentifyResponse"), "{text}");
        assert!(second.contains("EncodingLimit"), "{text}");

        // A chunk size that is not hexadecimal: 400, not a SOAP fault.
        let text = answer_to(
            addr,
            format!("{}ZZ\r\nabc\r\n0\r\n\r\n", head(true, "Transfer-Encoding: chunked\r\n")).as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(!text.contains("Envelope"), "{text}");

        // No credentials and a 4 MB body announced but not sent: the 401 comes first.
        let text = answer_to(
            addr,
            head(false, "Content-Length: 4000000\r\nConnection: close\r\n").as_bytes(),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
        assert!(text.to_ascii_lowercase().contains("www-authenticate"), "{text}");

        // The server still answers.
        assert_eq!(identify_status(addr).await, Some(200));
    })
    .await;
}
