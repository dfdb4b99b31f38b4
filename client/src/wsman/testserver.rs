//! A tiny HTTP/1.1 server on 127.0.0.1 for the client's tests, written by hand on a tokio
//! `TcpListener` so the tests exercise the real client stack (reqwest, headers, bodies)
//! without depending on the simulator. One request per connection (`Connection: close`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::ns;
use replica_wsman::xml::{self, Element};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Text of `s:Header/{ns}local`.
    pub fn soap_header(&self, nsu: &str, local: &str) -> Option<String> {
        let doc = xml::parse(self.body.as_bytes()).ok()?;
        let header = doc.child(ns::SOAP, "Header")?;
        header.child(nsu, local).map(|el| el.text.to_string())
    }

    pub fn message_id(&self) -> String {
        self.soap_header(ns::ADDRESSING, "MessageID")
            .unwrap_or_default()
    }

    pub fn action(&self) -> String {
        self.soap_header(ns::ADDRESSING, "Action")
            .unwrap_or_default()
    }

    pub fn resource_uri(&self) -> String {
        self.soap_header(ns::WSMAN, "ResourceURI")
            .unwrap_or_default()
    }

    /// All text at and below the first element `{ns}local` anywhere in the body.
    pub fn find(&self, nsu: &str, local: &str) -> Option<String> {
        fn first<'d, 'a>(el: &'d Element<'a>, nsu: &str, local: &str) -> Option<&'d Element<'a>> {
            if el.is(nsu, local) {
                return Some(el);
            }
            el.children.iter().find_map(|c| first(c, nsu, local))
        }
        fn text_below(el: &Element<'_>, out: &mut String) {
            out.push_str(&el.text);
            for c in &el.children {
                text_below(c, out);
            }
        }
        let doc = xml::parse(self.body.as_bytes()).ok()?;
        let mut out = String::new();
        text_below(first(&doc, nsu, local)?, &mut out);
        Some(out)
    }

    /// `(Name, value)` of the header SelectorSet.
    pub fn selectors(&self) -> Vec<(String, String)> {
        let Ok(doc) = xml::parse(self.body.as_bytes()) else {
            return Vec::new();
        };
        let Some(set) = doc
            .child(ns::SOAP, "Header")
            .and_then(|h| h.child(ns::WSMAN, "SelectorSet"))
        else {
            return Vec::new();
        };
        set.children
            .iter()
            .map(|s| {
                (
                    s.attr("Name").unwrap_or_default().to_string(),
                    s.text.to_string(),
                )
            })
            .collect()
    }
}

/// What the handler wants done with a request.
pub enum Reply {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Never answer (client timeout tests).
    Hang,
    /// Close the connection without a byte (transport error tests).
    Close,
}

impl Reply {
    pub fn soap(status: u16, body: String) -> Reply {
        Reply::Http {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/soap+xml;charset=UTF-8".into(),
            )],
            body,
        }
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

pub struct TestServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    serve_one(sock, handler, seen).await;
                });
            }
        });
        TestServer {
            url: format!("http://{addr}/wsman"),
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests lock").clone()
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn serve_one(mut sock: TcpStream, handler: Handler, seen: Arc<Mutex<Vec<Request>>>) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let reply = handler(&req);
    seen.lock().expect("requests lock").push(req);
    match reply {
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Reply::Close => {}
        Reply::Http {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} X\r\n");
            for (n, v) in headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            out.push_str(&body);
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    }
}

/// A response envelope in WinRM's layout (the simulator's writer), relating to `relates_to`.
pub fn response(relates_to: &str, action: &str, body: &str) -> String {
    replica_wsman::writer::response_envelope(
        &replica_wsman::writer::ReplyHeader {
            message_guid: "00000000-0000-4000-8000-000000000000",
            relates_to: Some(relates_to),
            lang: None,
        },
        action,
        body,
    )
}

/// A `Msvm_ConcreteJob` instance element.
pub fn job_instance(id: &str, state: u16, percent: u16) -> String {
    let uri = ns::class_uri("Msvm_ConcreteJob");
    format!(
        r#"<p:Msvm_ConcreteJob xmlns:p="{uri}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:Msvm_ConcreteJob_Type"><p:ErrorCode>{code}</p:ErrorCode><p:ErrorDescription>{desc}</p:ErrorDescription><p:InstanceID>{id}</p:InstanceID><p:JobState>{state}</p:JobState><p:PercentComplete>{percent}</p:PercentComplete></p:Msvm_ConcreteJob>"#,
        code = if state == 10 { 32768 } else { 0 },
        desc = if state == 10 { "Failed" } else { "" },
    )
}
