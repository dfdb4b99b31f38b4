//! The HTTP side: one `WsmanClient` per WS-Management endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::envelope::{self, Headers};
use super::error::{Result, WsmanError};
use super::msgid::MessageIdGen;
use super::ns;
use super::parse;
use super::recorder::{Exchange, OpKind, Recorder};
use super::types::{
    EnumItem, EnumOpts, EnumPage, Epr, EprMode, IdentifyInfo, Instance, InvokeOutput, Param,
    SelectorSet,
};

/// The content type every WinRM client sends (wsman.md §0).
pub const CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// User name and password for HTTP Basic.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, pass: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            pass: pass.into(),
        }
    }
}

// Hand-written so that a password never ends up in a log or a test failure message.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Accept any server certificate (the simulator's self-signed one). Never for real hosts
    /// unless the lab's certificate is self-signed too.
    pub accept_invalid_certs: bool,
    /// Whole-request HTTP timeout. Keep it above `operation_timeout`, or WinRM's own
    /// `w:TimedOut` fault can never be observed.
    pub timeout: Duration,
    /// `w:MaxEnvelopeSize` (winrm.exe sends 512000).
    pub max_envelope_size: u32,
    /// `w:OperationTimeout` (winrm.exe sends `PT60.000S`).
    pub operation_timeout: Duration,
    /// `xml:lang` of `w:Locale` and `p:DataLocale`.
    pub locale: String,
    /// Seed for MessageIDs, to make recordings repeatable. `None` seeds from the OS.
    pub message_id_seed: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            accept_invalid_certs: false,
            timeout: Duration::from_secs(90),
            max_envelope_size: 512_000,
            operation_timeout: Duration::from_secs(60),
            locale: "en-US".into(),
            message_id_seed: None,
        }
    }
}

/// An HTTP answer as received, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    /// Headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
}

impl RawResponse {
    /// Values of every `WWW-Authenticate` header.
    pub fn www_authenticate(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// What a typed operation knows about its request, for the recording.
struct Meta<'a> {
    op: OpKind,
    method: Option<&'a str>,
    resource_uri: Option<&'a str>,
    message_id: Option<&'a str>,
}

/// A typed request before it gets its MessageID.
struct Req<'a> {
    op: OpKind,
    method: Option<&'a str>,
    resource_uri: &'a str,
    action: &'a str,
    selectors: Option<&'a SelectorSet>,
    body: &'a str,
}

/// Async WS-Management client for one endpoint (`http(s)://host:port/wsman`).
///
/// Cheap to clone: clones share the connection pool, the MessageID sequence, the exchange
/// counter and the recorder.
#[derive(Clone)]
pub struct WsmanClient {
    http: reqwest::Client,
    endpoint: String,
    creds: Credentials,
    opts: ClientOptions,
    ids: Arc<MessageIdGen>,
    seq: Arc<AtomicU64>,
    recorder: Option<Arc<dyn Recorder>>,
}

impl std::fmt::Debug for WsmanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsmanClient")
            .field("endpoint", &self.endpoint)
            .field("creds", &self.creds)
            .field("opts", &self.opts)
            .field("recording", &self.recorder.is_some())
            .finish()
    }
}

/// reqwest is built with `rustls-no-provider`, so rustls has no crypto until one is installed,
/// and reqwest panics while building a client without one (even for plain-HTTP use, since the
/// TLS connector is always built). Install ring as the process default; if something else
/// already installed a provider (another client, a test), keep it.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error only means another thread won the race; its provider is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// WinRM answers in the request's encoding (UTF-8 here), but a UTF-16 body with a BOM is
/// legal SOAP, so decode it rather than report garbage. Invalid UTF-8 is replaced, not
/// rejected: the XML parser then reports the problem with context, and recordings stay text.
fn decode_body(bytes: &[u8]) -> String {
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn utf16(bytes: &[u8], f: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

impl WsmanClient {
    /// A client for `endpoint_url` (`http://host:5985/wsman`, `https://host:5986/wsman`).
    pub fn new(
        endpoint_url: impl Into<String>,
        creds: Credentials,
        opts: ClientOptions,
    ) -> Result<Self> {
        let endpoint = endpoint_url.into();
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| WsmanError::Config(format!("endpoint {endpoint:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WsmanError::Config(format!(
                "endpoint {endpoint:?}: scheme must be http or https"
            )));
        }
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .tls_danger_accept_invalid_certs(opts.accept_invalid_certs)
            // WinRM never redirects; following one would resend credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // A conformance run must reach the host it names, not whatever proxy the
            // environment points at.
            .no_proxy()
            .user_agent(concat!("replica-conformance/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WsmanError::Config(format!("HTTP client: {e}")))?;
        Ok(WsmanClient {
            http,
            endpoint,
            creds,
            ids: Arc::new(MessageIdGen::new(opts.message_id_seed)),
            opts,
            seq: Arc::new(AtomicU64::new(0)),
            recorder: None,
        })
    }

    /// Hands every later exchange of this client (and of its clones made afterwards) to
    /// `recorder`.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// A fresh `uuid:` MessageID from this client's sequence.
    pub fn next_message_id(&self) -> String {
        self.ids.next_id()
    }

    /// A complete request with this client's standard headers and a fresh MessageID, for
    /// callers that want to send (or first mangle) it through [`WsmanClient::send`].
    /// Returns `(message_id, xml)`.
    pub fn build_request(
        &self,
        resource_uri: &str,
        action: &str,
        selectors: Option<&SelectorSet>,
        body: &str,
    ) -> (String, String) {
        let id = self.next_message_id();
        let xml = envelope::envelope(
            &Headers {
                to: &self.endpoint,
                resource_uri,
                action,
                message_id: &id,
                max_envelope_size: self.opts.max_envelope_size,
                locale: &self.opts.locale,
                selectors,
                operation_timeout: self.opts.operation_timeout,
            },
            body,
        );
        (id, xml)
    }

    /// Sends `xml` as is and returns the HTTP answer whatever its status: no fault or
    /// RelatesTo checks. For recording and for deliberately malformed requests.
    pub async fn send(&self, xml: impl Into<String>) -> Result<RawResponse> {
        self.exchange(
            Meta {
                op: OpKind::Raw,
                method: None,
                resource_uri: None,
                message_id: None,
            },
            xml.into(),
        )
        .await
    }

    async fn exchange(&self, meta: Meta<'_>, xml: String) -> Result<RawResponse> {
        let start = Instant::now();
        // Basic is sent preemptively, as pywinrm and libvirt do; WinRM accepts it without a
        // challenge round trip.
        // NTLM: Negotiate/NTLM would go here. It is connection-bound (the three legs must share
        // one TCP connection) and over HTTP needs multipart/encrypted sealing, so it needs a
        // held hyper connection rather than reqwest's pool (rust-stack.md §1.3–1.4).
        let sent = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .basic_auth(&self.creds.user, Some(&self.creds.pass))
            .body(xml.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers: Vec<(String, String)> = resp
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                match resp.bytes().await {
                    Ok(b) => Ok(RawResponse {
                        status,
                        headers,
                        body: decode_body(&b),
                        elapsed: start.elapsed(),
                    }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let elapsed = start.elapsed();
        if let Some(rec) = &self.recorder {
            let (status, response_headers, response, error) = match &outcome {
                Ok(r) => (
                    Some(r.status),
                    r.headers.clone(),
                    Some(r.body.clone()),
                    None,
                ),
                Err(e) => (None, Vec::new(), None, Some(error_chain(e))),
            };
            rec.record(&Exchange {
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                operation: meta.op,
                method: meta.method.map(str::to_string),
                resource_uri: meta.resource_uri.map(str::to_string),
                message_id: meta.message_id.map(str::to_string),
                endpoint: self.endpoint.clone(),
                request: xml,
                status,
                response_headers,
                response,
                elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                error,
            });
        }
        outcome.map_err(|e| {
            if e.is_timeout() {
                WsmanError::Timeout {
                    url: self.endpoint.clone(),
                    after: self.opts.timeout,
                }
            } else {
                WsmanError::Transport {
                    url: self.endpoint.clone(),
                    source: e,
                }
            }
        })
    }

    /// Builds, sends and decodes one typed request.
    async fn call<T>(
        &self,
        req: Req<'_>,
        f: impl FnOnce(roxmltree::Node<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let (id, xml) = self.build_request(req.resource_uri, req.action, req.selectors, req.body);
        let raw = self
            .exchange(
                Meta {
                    op: req.op,
                    method: req.method,
                    resource_uri: Some(req.resource_uri),
                    message_id: Some(&id),
                },
                xml,
            )
            .await?;
        parse::decode(raw.status, &raw.www_authenticate(), &raw.body, Some(&id), f)
    }

    /// WS-Management Identify. Its response has no RelatesTo (the request has no MessageID).
    pub async fn identify(&self) -> Result<IdentifyInfo> {
        let raw = self
            .exchange(
                Meta {
                    op: OpKind::Identify,
                    method: None,
                    resource_uri: None,
                    message_id: None,
                },
                envelope::identify_envelope(),
            )
            .await?;
        parse::decode(
            raw.status,
            &raw.www_authenticate(),
            &raw.body,
            None,
            parse::identify_response,
        )
    }

    /// WS-Transfer Get of one instance.
    pub async fn get(&self, resource_uri: &str, selectors: &SelectorSet) -> Result<Instance> {
        self.call(
            Req {
                op: OpKind::Get,
                method: None,
                resource_uri,
                action: ns::action::GET,
                selectors: Some(selectors),
                body: "",
            },
            parse::get_response,
        )
        .await
    }

    /// Get of the object an EPR points to, with all of its selectors.
    pub async fn get_epr(&self, epr: &Epr) -> Result<Instance> {
        self.get(&epr.resource_uri, &epr.selectors).await
    }

    /// The Enumerate request alone: the first page (items only when optimised).
    pub async fn enumerate_start(
        &self,
        resource_uri: &str,
        filter: Option<&str>,
        opts: &EnumOpts,
    ) -> Result<EnumPage> {
        let body =
            envelope::enumerate_body(filter, opts.optimize, opts.max_elements, opts.epr_mode);
        self.call(
            Req {
                op: OpKind::Enumerate,
                method: None,
                resource_uri,
                action: ns::action::ENUMERATE,
                selectors: None,
                body: &body,
            },
            parse::enum_page,
        )
        .await
    }

    /// One Pull. This client pulls from the URI it enumerated; libvirt pulls from the class
    /// URI after a `/*` Enumerate, which a caller can reproduce by passing that URI here.
    pub async fn pull(
        &self,
        resource_uri: &str,
        context: &str,
        max_elements: Option<u32>,
    ) -> Result<EnumPage> {
        self.call(
            Req {
                op: OpKind::Pull,
                method: None,
                resource_uri,
                action: ns::action::PULL,
                selectors: None,
                body: &envelope::pull_body(context, max_elements),
            },
            parse::enum_page,
        )
        .await
    }

    /// Releases an enumeration context before its end.
    pub async fn release(&self, resource_uri: &str, context: &str) -> Result<()> {
        self.call(
            Req {
                op: OpKind::Release,
                method: None,
                resource_uri,
                action: ns::action::RELEASE,
                selectors: None,
                body: &envelope::release_body(context),
            },
            |_| Ok(()),
        )
        .await
    }

    /// Enumerate, then Pull until the sequence ends (EndOfSequence, or a page without a
    /// context). `filter` is WQL, which WinRM only accepts with the `/*` URI
    /// ([`ns::ns_wildcard_uri`]).
    pub async fn enumerate(
        &self,
        resource_uri: &str,
        filter: Option<&str>,
        opts: &EnumOpts,
    ) -> Result<Vec<EnumItem>> {
        let first = self.enumerate_start(resource_uri, filter, opts).await?;
        let mut context = first.next_context().map(str::to_string);
        let mut items = first.items;
        let mut pulls = 0u32;
        while let Some(ctx) = context {
            if pulls >= opts.max_pulls {
                return Err(WsmanError::Protocol(format!(
                    "enumeration of {resource_uri} did not end after {pulls} pulls"
                )));
            }
            pulls += 1;
            let page = self.pull(resource_uri, &ctx, opts.max_elements).await?;
            context = page.next_context().map(str::to_string);
            items.extend(page.items);
        }
        Ok(items)
    }

    /// [`WsmanClient::enumerate`] in object mode, returning the instances.
    pub async fn enumerate_instances(
        &self,
        resource_uri: &str,
        filter: Option<&str>,
        opts: &EnumOpts,
    ) -> Result<Vec<Instance>> {
        let opts = EnumOpts {
            epr_mode: EprMode::Objects,
            ..opts.clone()
        };
        let items = self.enumerate(resource_uri, filter, &opts).await?;
        Ok(items
            .into_iter()
            .filter_map(EnumItem::into_instance)
            .collect())
    }

    /// [`WsmanClient::enumerate`] in `EnumerateEPR` mode, returning the references.
    pub async fn enumerate_eprs(
        &self,
        resource_uri: &str,
        filter: Option<&str>,
        opts: &EnumOpts,
    ) -> Result<Vec<Epr>> {
        let opts = EnumOpts {
            epr_mode: EprMode::Epr,
            ..opts.clone()
        };
        let items = self.enumerate(resource_uri, filter, &opts).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                EnumItem::Epr(e) | EnumItem::InstanceAndEpr(_, e) => Some(e),
                EnumItem::Instance(_) => None,
            })
            .collect())
    }

    /// A WQL query over `root/virtualization/v2` (through the `/*` URI), default options.
    pub async fn query(&self, wql: &str) -> Result<Vec<Instance>> {
        self.enumerate_instances(&ns::ns_wildcard_uri(), Some(wql), &EnumOpts::default())
            .await
    }

    /// Invokes `method` on the instance at `resource_uri` + `selectors`.
    pub async fn invoke(
        &self,
        resource_uri: &str,
        method: &str,
        selectors: &SelectorSet,
        params: &[(&str, Param)],
    ) -> Result<InvokeOutput> {
        let body = envelope::invoke_body(resource_uri, method, params)?;
        let action = format!("{resource_uri}/{method}");
        self.call(
            Req {
                op: OpKind::Invoke,
                method: Some(method),
                resource_uri,
                action: &action,
                selectors: Some(selectors),
                body: &body,
            },
            |b| parse::invoke_output(b, method),
        )
        .await
    }
}

/// An error with its causes, on one line (reqwest hides the useful part in `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_boms() {
        assert_eq!(decode_body(b"\xEF\xBB\xBF<a/>"), "<a/>");
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("<a/>".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode_body(&le), "<a/>");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("<a/>".encode_utf16().flat_map(|u| u.to_be_bytes()))
            .collect();
        assert_eq!(decode_body(&be), "<a/>");
        assert_eq!(decode_body(b"<a>\xFF</a>"), "<a>\u{FFFD}</a>");
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials::new("admin", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn rejects_bad_endpoints() {
        for url in ["not a url", "ftp://host/wsman"] {
            assert!(matches!(
                WsmanClient::new(url, Credentials::new("u", "p"), ClientOptions::default()),
                Err(WsmanError::Config(_))
            ));
        }
    }

    #[test]
    fn builds_https_client_on_ring() {
        let opts = ClientOptions {
            accept_invalid_certs: true,
            ..ClientOptions::default()
        };
        let c = WsmanClient::new(
            "https://127.0.0.1:5986/wsman",
            Credentials::new("u", "p"),
            opts,
        );
        assert!(c.is_ok(), "{c:?}");
    }
}
