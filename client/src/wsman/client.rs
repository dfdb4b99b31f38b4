//! The HTTP side: one `WsmanClient` per WS-Management endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ensure_crypto_provider;

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

/// The content type every WinRM client sends (docs/facts.md#key-facts).
pub const CONTENT_TYPE: &str = replica_wsman::ns::SOAP_CONTENT_TYPE;

/// User name and password, for Basic and for Negotiate (NTLM; `DOMAIN\\user` names a domain).
#[derive(Clone)]
pub struct Credentials {
    /// The user name (`DOMAIN\\user` names a domain for Negotiate).
    pub user: String,
    /// The password.
    pub pass: String,
}

impl Credentials {
    /// A user name and password.
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

/// How a [`WsmanClient`] talks: TLS, timeouts, envelope options, credentials.
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
    /// How to authenticate.
    pub auth: AuthMethod,
}

/// The authentication scheme (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// What a Windows host configured the usual way takes: Basic over HTTPS; over plain HTTP
    /// Negotiate (NTLM with message encryption), falling back to Basic when the server's
    /// challenge offers no Negotiate.
    #[default]
    Auto,
    /// HTTP Basic, sent preemptively.
    Basic,
    /// Negotiate: NTLMv2 inside SPNEGO on one kept-alive connection; over plain HTTP every
    /// body is sealed (MS-WSMV `multipart/encrypted`).
    Negotiate,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(AuthMethod::Auto),
            "basic" => Ok(AuthMethod::Basic),
            "negotiate" | "ntlm" => Ok(AuthMethod::Negotiate),
            other => Err(format!(
                "unknown auth `{other}` (expected auto, basic, negotiate)"
            )),
        }
    }
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
            auth: AuthMethod::Auto,
        }
    }
}

/// An HTTP answer as received, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
    /// Time from sending to the whole answer read.
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

enum Handshake {
    /// Boxed: a session holds two RC4 states.
    Done(Box<replica_ntlm::Session>),
    /// AUTHENTICATE answered 401: the credentials were refused.
    Refused(Answer),
    /// NEGOTIATE got no Negotiate token back (the server does not offer it).
    NoNegotiate(Answer),
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
    /// The Negotiate context and the one connection it is bound to. The async lock is held
    /// for a whole exchange (seal, send, receive, unseal): requests of one client go one at a
    /// time on that connection. Not reqwest's pool: it may open a second connection while
    /// the first is on its way back to the pool, and a context does not follow a request to
    /// another connection.
    negotiate: Arc<tokio::sync::Mutex<NegotiateState>>,
}

#[derive(Default)]
struct NegotiateState {
    conn: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>>,
    session: Option<replica_ntlm::Session>,
    /// Auto mode found no Negotiate in the server's challenge: Basic from then on.
    basic_fallback: bool,
}

/// What `transmit` can fail with: the wire, or the Negotiate exchange.
enum TxError {
    Http(reqwest::Error),
    Conn(String),
    Timeout,
    Negotiate(String),
}

/// An HTTP answer before decoding.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token of a `WWW-Authenticate: Negotiate <token>` header, if any.
    fn negotiate_token(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .find_map(|(_, v)| v.strip_prefix("Negotiate "))
            .and_then(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t.trim())
                    .ok()
            })
    }

    fn offers(&self, scheme: &str) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("www-authenticate")
                && v.split_whitespace()
                    .next()
                    .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        })
    }
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
            .user_agent(concat!("replica-client/", env!("CARGO_PKG_VERSION")))
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
            negotiate: Arc::default(),
        })
    }

    /// Hands every later exchange of this client (and of its clones made afterwards) to
    /// `recorder`.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The URL called.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The options the client was built with.
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
        let outcome = self.transmit(&xml).await.map(|a| RawResponse {
            status: a.status,
            headers: a.headers,
            body: decode_body(&a.body),
            elapsed: start.elapsed(),
        });
        let elapsed = start.elapsed();
        if let Some(rec) = &self.recorder {
            let (status, response_headers, response, error) = match &outcome {
                Ok(r) => (
                    Some(r.status),
                    r.headers.clone(),
                    Some(r.body.clone()),
                    None,
                ),
                Err(TxError::Http(e)) => (None, Vec::new(), None, Some(error_chain(e))),
                Err(TxError::Negotiate(e) | TxError::Conn(e)) => {
                    (None, Vec::new(), None, Some(e.clone()))
                }
                Err(TxError::Timeout) => (None, Vec::new(), None, Some("timed out".into())),
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
        outcome.map_err(|e| match e {
            TxError::Negotiate(detail) => {
                WsmanError::protocol(format!("Negotiate with {}: {detail}", self.endpoint))
            }
            TxError::Conn(detail) => WsmanError::Connection {
                url: self.endpoint.clone(),
                detail,
            },
            TxError::Timeout => WsmanError::Timeout {
                url: self.endpoint.clone(),
                after: self.opts.timeout,
            },
            TxError::Http(e) if e.is_timeout() => WsmanError::Timeout {
                url: self.endpoint.clone(),
                after: self.opts.timeout,
            },
            TxError::Http(e) => WsmanError::Transport {
                url: self.endpoint.clone(),
                source: e,
            },
        })
    }

    /// One POST as is; reads the whole answer.
    async fn post(
        &self,
        authorization: Option<String>,
        content_type: &str,
        body: Vec<u8>,
    ) -> std::result::Result<Answer, TxError> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(TxError::Http)?;
        let status = resp.status().as_u16();
        let headers = header_pairs(resp.headers());
        let body = resp.bytes().await.map_err(TxError::Http)?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// One POST on the held connection (opened when there is none). A connection that broke
    /// takes its context with it.
    async fn post_held(
        &self,
        state: &mut NegotiateState,
        authorization: Option<String>,
        content_type: &str,
        body: Vec<u8>,
    ) -> std::result::Result<Answer, TxError> {
        use http_body_util::BodyExt as _;
        let url = reqwest::Url::parse(&self.endpoint).map_err(|e| TxError::Conn(e.to_string()))?;
        let host = url.host_str().unwrap_or("127.0.0.1").to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let work = async {
            if state.conn.as_ref().is_none_or(|c| c.is_closed()) {
                state.session = None;
                // An IPv6 literal comes bracketed from the URL.
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let tcp = tokio::net::TcpStream::connect((bare, port))
                    .await
                    .map_err(|e| TxError::Conn(format!("connect: {e}")))?;
                let _ = tcp.set_nodelay(true);
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .map_err(|e| TxError::Conn(format!("HTTP handshake: {e}")))?;
                // Driven until the server closes it or the sender is dropped.
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                state.conn = Some(sender);
            }
            let Some(sender) = state.conn.as_mut() else {
                return Err(TxError::Conn("no connection".into()));
            };
            sender
                .ready()
                .await
                .map_err(|e| TxError::Conn(format!("connection closed: {e}")))?;
            let mut req = hyper::Request::post(url.path())
                .header(hyper::header::HOST, &authority)
                .header(hyper::header::CONTENT_TYPE, content_type)
                .header(
                    hyper::header::USER_AGENT,
                    concat!("replica-client/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(a) = authorization {
                req = req.header(hyper::header::AUTHORIZATION, a);
            }
            let req = req
                .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                .map_err(|e| TxError::Conn(format!("request: {e}")))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| TxError::Conn(format!("exchange: {e}")))?;
            let status = resp.status().as_u16();
            let headers = header_pairs(resp.headers());
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| TxError::Conn(format!("reading the answer: {e}")))?
                .to_bytes()
                .to_vec();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(self.opts.timeout, work).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                state.conn = None;
                state.session = None;
                Err(e)
            }
            Err(_) => {
                // A half-finished exchange leaves the RC4 streams out of step.
                state.conn = None;
                state.session = None;
                Err(TxError::Timeout)
            }
        }
    }

    fn basic_header(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.creds.user, self.creds.pass);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Sends one envelope with the configured scheme.
    async fn transmit(&self, xml: &str) -> std::result::Result<Answer, TxError> {
        let https = self.endpoint.starts_with("https:");
        let negotiate = match self.opts.auth {
            AuthMethod::Basic => false,
            AuthMethod::Negotiate => true,
            AuthMethod::Auto => !https,
        };
        if negotiate && https {
            // Negotiate over HTTPS would need the held connection to speak TLS (and channel
            // binding); WinRM over HTTPS is normally reached with Basic.
            return Err(TxError::Negotiate(
                "Negotiate over HTTPS is not supported by this client: use --auth basic".into(),
            ));
        }
        if !negotiate {
            // Basic is sent preemptively, as pywinrm and libvirt do; WinRM accepts it without
            // a challenge round trip.
            return self
                .post(
                    Some(self.basic_header()),
                    CONTENT_TYPE,
                    xml.as_bytes().to_vec(),
                )
                .await;
        }
        let mut state = self.negotiate.lock().await;
        if state.basic_fallback {
            drop(state);
            return self
                .post(
                    Some(self.basic_header()),
                    CONTENT_TYPE,
                    xml.as_bytes().to_vec(),
                )
                .await;
        }
        // A context lost with its connection (the server closed it, a 401 on a sealed body)
        // is set up again once.
        for attempt in 0..2 {
            if state.session.is_none() {
                match self.handshake(&mut state).await? {
                    Handshake::Done(s) => state.session = Some(*s),
                    Handshake::Refused(answer) => return Ok(answer),
                    Handshake::NoNegotiate(answer) => {
                        if self.opts.auth == AuthMethod::Auto && answer.offers("basic") {
                            state.basic_fallback = true;
                            drop(state);
                            return self
                                .post(
                                    Some(self.basic_header()),
                                    CONTENT_TYPE,
                                    xml.as_bytes().to_vec(),
                                )
                                .await;
                        }
                        return Ok(answer);
                    }
                }
            }
            let Some(session) = state.session.as_mut() else {
                continue;
            };
            let body = replica_ntlm::mime::encrypt(session, xml.as_bytes());
            let content_type = replica_ntlm::mime::CONTENT_TYPE;
            let sent = self.post_held(&mut state, None, content_type, body).await;
            let mut answer = match sent {
                Ok(a) => a,
                Err(e) => {
                    state.session = None;
                    return Err(e);
                }
            };
            if answer.status == 401 {
                state.session = None;
                if attempt == 0 {
                    continue;
                }
                return Ok(answer);
            }
            if answer
                .header("content-type")
                .is_some_and(replica_ntlm::mime::is_encrypted)
            {
                let Some(session) = state.session.as_mut() else {
                    continue;
                };
                match replica_ntlm::mime::decrypt(session, &answer.body) {
                    Ok(plain) => {
                        answer.body = plain;
                        answer
                            .headers
                            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
                        answer
                            .headers
                            .push(("content-type".into(), CONTENT_TYPE.into()));
                    }
                    Err(e) => {
                        state.session = None;
                        return Err(TxError::Negotiate(format!(
                            "the sealed answer did not open: {e}"
                        )));
                    }
                }
            }
            return Ok(answer);
        }
        Err(TxError::Negotiate(
            "the security context was lost twice in a row".into(),
        ))
    }

    /// NEGOTIATE and AUTHENTICATE on empty POSTs, as pypsrp and pywinrm set up a context
    /// before sealing anything.
    async fn handshake(
        &self,
        state: &mut NegotiateState,
    ) -> std::result::Result<Handshake, TxError> {
        use base64::Engine as _;
        use rand::Rng as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut client = replica_ntlm::Initiator::new(&self.creds.user, &self.creds.pass, true);
        let first = format!("Negotiate {}", b64.encode(client.first()));
        // A fresh connection: the handshake and the context belong to it.
        state.conn = None;
        let answer = self
            .post_held(state, Some(first), CONTENT_TYPE, Vec::new())
            .await?;
        let Some(challenge) = answer.negotiate_token().filter(|_| answer.status == 401) else {
            return Ok(Handshake::NoNegotiate(answer));
        };
        let mut client_challenge = [0u8; 8];
        let mut session_key = [0u8; 16];
        rand::rng().fill_bytes(&mut client_challenge);
        rand::rng().fill_bytes(&mut session_key);
        let auth = client
            .second(&challenge, client_challenge, session_key)
            .map_err(|e| TxError::Negotiate(format!("CHALLENGE: {e}")))?;
        let second = format!("Negotiate {}", b64.encode(auth));
        let answer = self
            .post_held(state, Some(second), CONTENT_TYPE, Vec::new())
            .await?;
        if answer.status == 401 {
            return Ok(Handshake::Refused(answer));
        }
        let token = answer.negotiate_token();
        client
            .finish(token.as_deref())
            .map(|s| Handshake::Done(Box::new(s)))
            .map_err(|e| TxError::Negotiate(format!("final token: {e}")))
    }

    /// Builds, sends and decodes one typed request.
    async fn call<T>(
        &self,
        req: Req<'_>,
        f: impl FnOnce(&replica_wsman::xml::Element<'_>) -> parse::Result<T>,
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
            .map_err(WsmanError::from)
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
        .map_err(WsmanError::from)
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
                return Err(WsmanError::protocol(format!(
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

/// A response's headers as (name, value) pairs, the same for the reqwest and the hyper path.
fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
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
