//! End-to-end tests of `WsmanClient` against the loopback test server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;

use super::testserver::{Reply, Request, TestServer, job_instance, response};
use super::*;

const USER: &str = "admin";
const PASS: &str = "p@ss:word";
const JOB_ID: &str = "9C7D3E22-5B1A-4C59-8E5B-3D0E8E6B1A00";

fn rs_uri() -> String {
    class_uri("Msvm_ReplicationService")
}

fn client(url: &str) -> WsmanClient {
    client_with(url, ClientOptions::default())
}

/// The scripted test server speaks Basic: the Negotiate path is tested against the simulator
/// (tests/it/auth.rs).
fn client_with(url: &str, opts: ClientOptions) -> WsmanClient {
    let opts = ClientOptions {
        auth: AuthMethod::Basic,
        ..opts
    };
    match WsmanClient::new(url, Credentials::new(USER, PASS), opts) {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    }
}

fn expected_basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    )
}

/// Checks Basic auth like the simulator: 401 with a Basic challenge otherwise.
fn authorized(req: &Request) -> Option<Reply> {
    if req.header("authorization") == Some(expected_basic().as_str()) {
        None
    } else {
        Some(Reply::Http {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), "Basic realm=\"WSMAN\"".into())],
            body: String::new(),
        })
    }
}

fn get_job_reply(req: &Request, state: u16, percent: u16) -> Reply {
    Reply::soap(
        200,
        response(
            &req.message_id(),
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse",
            &job_instance(JOB_ID, state, percent),
        ),
    )
}

#[tokio::test]
async fn basic_auth_headers_and_get() {
    let server = TestServer::start(|req| {
        if let Some(deny) = authorized(req) {
            return deny;
        }
        get_job_reply(req, 7, 100)
    })
    .await;
    let c = client(&server.url);
    let sel = SelectorSet::from([("InstanceID", JOB_ID)]);
    let inst = match c.get(&class_uri("Msvm_ConcreteJob"), &sel).await {
        Ok(i) => i,
        Err(e) => panic!("get: {e}"),
    };
    assert_eq!(inst.class, "Msvm_ConcreteJob");
    assert_eq!(inst.u16("JobState"), Some(7));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/wsman");
    assert_eq!(r.header("content-type"), Some(client::CONTENT_TYPE));
    assert_eq!(r.header("authorization"), Some(expected_basic().as_str()));
    assert_eq!(r.action(), ns::action::GET);
    assert_eq!(r.resource_uri(), class_uri("Msvm_ConcreteJob"));
    assert_eq!(
        r.soap_header(ns::ADDRESSING, "To").as_deref(),
        Some(server.url.as_str())
    );
    assert_eq!(
        r.selectors(),
        vec![("InstanceID".to_string(), JOB_ID.to_string())]
    );
}

#[tokio::test]
async fn unauthorized_reports_the_challenge() {
    let server = TestServer::start(|req| authorized(req).unwrap_or(Reply::Close)).await;
    let c = match WsmanClient::new(
        &server.url,
        Credentials::new(USER, "wrong"),
        ClientOptions {
            auth: AuthMethod::Basic,
            ..ClientOptions::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match c.identify().await {
        Err(WsmanError::Response(ResponseError::Unauthorized { www_authenticate })) => {
            assert_eq!(www_authenticate, vec!["Basic realm=\"WSMAN\"".to_string()]);
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn http_500_fault() {
    let server = TestServer::start(|req| {
        let body = format!(
            concat!(
                r#"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code>"#,
                r#"<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request because the request contained invalid selectors for the resource. </s:Text></s:Reason>"#,
                r#"<s:Detail><w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors</w:FaultDetail>"#,
                r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="{m}"><f:Message>bad selectors</f:Message></f:WSManFault></s:Detail></s:Fault>"#
            ),
            m = "127.0.0.1"
        );
        Reply::soap(
            500,
            response(
                &req.message_id(),
                "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
                &body,
            ),
        )
    })
    .await;
    let c = client(&server.url);
    let err = c
        .get(&rs_uri(), &SelectorSet::from([("Bogus", "x")]))
        .await
        .expect_err("fault");
    let f = err
        .fault()
        .unwrap_or_else(|| panic!("expected Fault, got {err:?}"));
    assert_eq!(f.http_status, 500);
    assert!(f.is_sender());
    assert!(f.subcode_is(ns::WSMAN, "InvalidSelectors"));
    assert_eq!(f.wsman_code, Some(2150858843));
    assert_eq!(f.message.as_deref(), Some("bad selectors"));
}

/// Enumerate (optimised, one item, a context) then two Pulls; the last page has
/// EndOfSequence and no context. Every exchange is recorded.
#[tokio::test]
async fn enumerate_and_pull_to_the_end() {
    let server = TestServer::start(|req| {
        if let Some(deny) = authorized(req) {
            return deny;
        }
        let item = |n: u32| {
            format!(
                r#"<p:Msvm_ComputerSystem xmlns:p="{}"><p:Name>VM{n}</p:Name><p:EnabledState>2</p:EnabledState></p:Msvm_ComputerSystem>"#,
                class_uri("Msvm_ComputerSystem")
            )
        };
        let action = req.action();
        let (resp_action, body) = if action == ns::action::ENUMERATE {
            (
                "EnumerateResponse",
                format!(
                    "<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-1</n:EnumerationContext><w:Items>{}</w:Items></n:EnumerateResponse>",
                    item(1)
                ),
            )
        } else if action == ns::action::PULL {
            match req.find(ns::ENUMERATION, "EnumerationContext").as_deref() {
                Some("uuid:CTX-1") => (
                    "PullResponse",
                    format!(
                        "<n:PullResponse><n:EnumerationContext>uuid:CTX-2</n:EnumerationContext><n:Items>{}</n:Items></n:PullResponse>",
                        item(2)
                    ),
                ),
                Some("uuid:CTX-2") => (
                    "PullResponse",
                    format!(
                        "<n:PullResponse><n:Items>{}</n:Items><n:EndOfSequence/></n:PullResponse>",
                        item(3)
                    ),
                ),
                _ => return Reply::soap(400, "unknown context".into()),
            }
        } else {
            return Reply::soap(400, format!("unexpected action {action}"));
        };
        Reply::soap(
            200,
            response(
                &req.message_id(),
                &format!("http://schemas.xmlsoap.org/ws/2004/09/enumeration/{resp_action}"),
                &body,
            ),
        )
    })
    .await;
    let rec = Arc::new(MemoryRecorder::new());
    let c = client(&server.url).with_recorder(rec.clone());
    let opts = EnumOpts {
        max_elements: Some(1),
        ..EnumOpts::default()
    };
    let uri = class_uri("Msvm_ComputerSystem");
    let vms = match c.enumerate_instances(&uri, None, &opts).await {
        Ok(v) => v,
        Err(e) => panic!("enumerate: {e}"),
    };
    let names: Vec<&str> = vms.iter().filter_map(|i| i.text("Name")).collect();
    assert_eq!(names, ["VM1", "VM2", "VM3"]);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].action(), ns::action::ENUMERATE);
    assert!(reqs[0].find(ns::WSMAN, "OptimizeEnumeration").is_some());
    assert_eq!(reqs[0].find(ns::WSMAN, "MaxElements").as_deref(), Some("1"));
    assert_eq!(reqs[0].find(ns::WSMAN, "Filter"), None);
    for r in &reqs[1..] {
        assert_eq!(r.action(), ns::action::PULL);
        assert_eq!(r.resource_uri(), uri);
        assert_eq!(r.find(ns::ENUMERATION, "MaxElements").as_deref(), Some("1"));
    }
    // Every request had its own MessageID.
    let mut ids: Vec<String> = reqs.iter().map(Request::message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    let ex = rec.exchanges();
    assert_eq!(
        ex.iter().map(|e| e.operation).collect::<Vec<_>>(),
        [OpKind::Enumerate, OpKind::Pull, OpKind::Pull]
    );
    assert_eq!(ex.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
    for (e, r) in ex.iter().zip(&reqs) {
        assert_eq!(e.status, Some(200));
        assert_eq!(e.request, r.body);
        assert_eq!(e.message_id.as_deref(), Some(r.message_id().as_str()));
        assert_eq!(e.resource_uri.as_deref(), Some(uri.as_str()));
        assert!(
            e.response
                .as_deref()
                .is_some_and(|b| b.contains("RelatesTo"))
        );
        // Recordings never carry the credentials.
        let json = serde_json::to_string(e).unwrap_or_default();
        assert!(!json.contains(PASS) && !json.contains(&expected_basic()));
    }
}

#[tokio::test]
async fn wql_enumeration_uses_the_wildcard_uri_and_release() {
    let server = TestServer::start(|req| {
        let action = req.action();
        if action == ns::action::RELEASE {
            return Reply::soap(
                200,
                response(
                    &req.message_id(),
                    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse",
                    "",
                ),
            );
        }
        Reply::soap(
            200,
            response(
                &req.message_id(),
                "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse",
                "<n:EnumerateResponse><n:EnumerationContext>uuid:C</n:EnumerationContext></n:EnumerateResponse>",
            ),
        )
    })
    .await;
    let c = client(&server.url);
    let q = "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'a&b'";
    let opts = EnumOpts {
        optimize: false,
        ..EnumOpts::default()
    };
    let page = match c.enumerate_start(&ns_wildcard_uri(), Some(q), &opts).await {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.next_context(), Some("uuid:C"));
    assert!(page.items.is_empty());
    if let Err(e) = c.release(&ns_wildcard_uri(), "uuid:C").await {
        panic!("release: {e}");
    }
    let reqs = server.requests();
    assert_eq!(reqs[0].resource_uri(), ns_wildcard_uri());
    assert_eq!(reqs[0].find(ns::WSMAN, "Filter").as_deref(), Some(q));
    assert_eq!(reqs[0].find(ns::WSMAN, "OptimizeEnumeration"), None);
    assert_eq!(reqs[1].action(), ns::action::RELEASE);
    assert_eq!(
        reqs[1]
            .find(ns::ENUMERATION, "EnumerationContext")
            .as_deref(),
        Some("uuid:C")
    );
}

#[tokio::test]
async fn enumeration_that_never_ends_is_cut_off() {
    let server = TestServer::start(|req| {
        let body = if req.action() == ns::action::ENUMERATE {
            "<n:EnumerateResponse><n:EnumerationContext>uuid:C</n:EnumerationContext></n:EnumerateResponse>"
        } else {
            "<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items/></n:PullResponse>"
        };
        Reply::soap(200, response(&req.message_id(), "x", body))
    })
    .await;
    let c = client(&server.url);
    let opts = EnumOpts {
        max_pulls: 3,
        ..EnumOpts::default()
    };
    let r = c.enumerate(&rs_uri(), None, &opts).await;
    assert!(
        matches!(r, Err(WsmanError::Response(ResponseError::Protocol(ref m))) if m.contains("3 pulls")),
        "{r:?}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn relates_to_mismatch_from_the_wire() {
    let server = TestServer::start(|_req| {
        Reply::soap(
            200,
            response("uuid:SOMEONE-ELSE", "x", &job_instance(JOB_ID, 7, 100)),
        )
    })
    .await;
    let c = client(&server.url);
    let r = c
        .get(
            &class_uri("Msvm_ConcreteJob"),
            &SelectorSet::from([("InstanceID", JOB_ID)]),
        )
        .await;
    match r {
        Err(WsmanError::Response(ResponseError::RelatesToMismatch { expected, got })) => {
            assert_eq!(expected, server.requests()[0].message_id());
            assert_eq!(got.as_deref(), Some("uuid:SOMEONE-ELSE"));
        }
        other => panic!("expected RelatesToMismatch, got {other:?}"),
    }
}

/// A job server: Invoke answers 4096 with a Job EPR; then the job moves 3 → 4 (50%) → final.
fn job_server_handler(final_state: u16) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let polls = Arc::new(AtomicUsize::new(0));
    move |req: &Request| {
        if let Some(deny) = authorized(req) {
            return deny;
        }
        let action = req.action();
        let rs = rs_uri();
        if action == format!("{rs}/InitiateFailback") {
            let body = format!(
                concat!(
                    r#"<p:InitiateFailback_OUTPUT xmlns:p="{rs}"><p:Job><a:Address>{anon}</a:Address><a:ReferenceParameters>"#,
                    r#"<w:ResourceURI>{job}</w:ResourceURI><w:SelectorSet><w:Selector Name="InstanceID">{id}</w:Selector>"#,
                    r#"<w:Selector Name="__cimnamespace">root/virtualization/v2</w:Selector></w:SelectorSet></a:ReferenceParameters></p:Job>"#,
                    r#"<p:ReturnValue>4096</p:ReturnValue></p:InitiateFailback_OUTPUT>"#
                ),
                rs = rs,
                anon = ns::ANONYMOUS,
                job = class_uri("Msvm_ConcreteJob"),
                id = JOB_ID
            );
            return Reply::soap(
                200,
                response(
                    &req.message_id(),
                    &format!("{rs}/InitiateFailbackResponse"),
                    &body,
                ),
            );
        }
        let n = polls.fetch_add(1, Ordering::SeqCst);
        let (state, pct) = match n {
            0 => (3, 0),
            1 => (4, 50),
            _ => (final_state, 100),
        };
        if action == ns::action::GET {
            return get_job_reply(req, state, pct);
        }
        if action == ns::action::ENUMERATE {
            let body = format!(
                "<n:EnumerateResponse><n:EnumerationContext>uuid:J</n:EnumerationContext><w:Items>{}</w:Items><n:EndOfSequence/></n:EnumerateResponse>",
                job_instance(JOB_ID, state, pct)
            );
            return Reply::soap(200, response(&req.message_id(), "x", &body));
        }
        Reply::soap(400, format!("unexpected action {action}"))
    }
}

#[tokio::test]
async fn invoke_then_wait_for_job_by_get() {
    let server = TestServer::start(job_server_handler(7)).await;
    let c = client(&server.url);
    let service = SelectorSet::from([
        ("CreationClassName", "Msvm_ReplicationService"),
        ("Name", "vmms"),
        ("SystemCreationClassName", "Msvm_ComputerSystem"),
        ("SystemName", "HV-PRIMARY"),
    ]);
    let vm = Epr::new(
        class_uri("Msvm_ComputerSystem"),
        [
            ("CreationClassName", "Msvm_ComputerSystem"),
            ("Name", "8FF5E6F3-A141-465B-83ED-3BFC0F59F7EF"),
        ],
    );
    let out = match c
        .invoke(
            &rs_uri(),
            "InitiateFailback",
            &service,
            &[("ComputerSystem", Param::from(&vm))],
        )
        .await
    {
        Ok(o) => o,
        Err(e) => panic!("invoke: {e}"),
    };
    assert_eq!(out.return_value, 4096);
    let id = out.job_instance_id().unwrap_or_default().to_string();
    assert_eq!(id, JOB_ID);

    let waited = match c
        .wait_for_job(
            &id,
            Duration::from_millis(5),
            Duration::from_secs(10),
            PollStyle::Get,
        )
        .await
    {
        Ok(w) => w,
        Err(e) => panic!("wait: {e}"),
    };
    assert!(waited.is_completed());
    assert_eq!(waited.phase(), JobPhase::Completed);
    assert_eq!(
        waited.observations,
        vec![(3, Some(0)), (4, Some(50)), (7, Some(100))]
    );

    let reqs = server.requests();
    let inv = &reqs[0];
    assert_eq!(inv.action(), format!("{}/InitiateFailback", rs_uri()));
    assert_eq!(inv.selectors().len(), 4);
    assert_eq!(
        inv.find(ns::WSMAN, "ResourceURI").as_deref(),
        Some(rs_uri().as_str()),
        "first ResourceURI is the header's"
    );
    assert_eq!(
        inv.find(&rs_uri(), "ComputerSystem")
            .map(|s| s.contains("8FF5E6F3-A141-465B-83ED-3BFC0F59F7EF")),
        Some(true)
    );
    for poll in &reqs[1..] {
        assert_eq!(poll.action(), ns::action::GET);
        assert_eq!(poll.resource_uri(), class_uri("Msvm_ConcreteJob"));
        assert_eq!(
            poll.selectors(),
            vec![("InstanceID".to_string(), JOB_ID.to_string())]
        );
    }
}

#[tokio::test]
async fn wait_for_failed_job_by_wql() {
    let server = TestServer::start(job_server_handler(10)).await;
    let c = client(&server.url);
    let waited = match c
        .wait_for_job(
            JOB_ID,
            Duration::from_millis(5),
            Duration::from_secs(10),
            PollStyle::Wql,
        )
        .await
    {
        Ok(w) => w,
        Err(e) => panic!("wait: {e}"),
    };
    assert_eq!(waited.final_state, 10);
    assert_eq!(waited.phase(), JobPhase::Failed);
    assert!(!waited.is_completed());
    assert_eq!(waited.error_code(), Some(32768));
    assert_eq!(waited.error_description(), Some("Failed"));
    assert_eq!(waited.observations.len(), 3);
    for poll in server.requests() {
        assert_eq!(poll.action(), ns::action::ENUMERATE);
        assert_eq!(poll.resource_uri(), ns_wildcard_uri());
        assert_eq!(
            poll.find(ns::WSMAN, "Filter"),
            Some(format!(
                "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{JOB_ID}'"
            ))
        );
    }
}

#[tokio::test]
async fn job_wait_times_out_with_observations() {
    let server = TestServer::start(|req| get_job_reply(req, 4, 10)).await;
    let c = client(&server.url);
    let r = c
        .wait_for_job(
            JOB_ID,
            Duration::from_millis(20),
            Duration::from_millis(120),
            PollStyle::Get,
        )
        .await;
    match r {
        Err(WsmanError::JobTimeout {
            last_state,
            observations,
            ..
        }) => {
            assert_eq!(last_state, Some(4));
            assert!(observations.len() >= 2, "{observations:?}");
            assert!(observations.iter().all(|o| *o == (4, Some(10))));
        }
        other => panic!("expected JobTimeout, got {other:?}"),
    }
}

#[tokio::test]
async fn wql_job_poll_refuses_quotes_and_reports_missing_jobs() {
    let server = TestServer::start(|req| {
        Reply::soap(
            200,
            response(
                &req.message_id(),
                "x",
                "<n:EnumerateResponse><w:Items/><n:EndOfSequence/></n:EnumerateResponse>",
            ),
        )
    })
    .await;
    let c = client(&server.url);
    assert!(matches!(
        c.read_job("x' OR '1'='1", PollStyle::Wql).await,
        Err(WsmanError::InvalidRequest(_))
    ));
    assert!(matches!(
        c.read_job(JOB_ID, PollStyle::Wql).await,
        Err(WsmanError::JobNotFound { .. })
    ));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn timeouts_and_dropped_connections() {
    let server = TestServer::start(|req| {
        if req.body.contains("hang") {
            Reply::Hang
        } else {
            Reply::Close
        }
    })
    .await;
    let rec = Arc::new(MemoryRecorder::new());
    let c = client_with(
        &server.url,
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    )
    .with_recorder(rec.clone());
    assert!(matches!(
        c.send("<hang/>").await,
        Err(WsmanError::Timeout { .. })
    ));
    let dropped = c.send("<drop/>").await;
    assert!(
        matches!(dropped, Err(WsmanError::Transport { .. })),
        "{dropped:?}"
    );
    let ex = rec.exchanges();
    assert_eq!(ex.len(), 2);
    assert!(ex.iter().all(|e| e.status.is_none() && e.error.is_some()));
    assert!(ex.iter().all(|e| e.operation == OpKind::Raw));
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // Bind then drop to get a loopback port nobody listens on.
    let port = {
        let l = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        l.local_addr().map(|a| a.port()).unwrap_or(1)
    };
    let c = client(&format!("http://127.0.0.1:{port}/wsman"));
    let r = c.identify().await;
    assert!(matches!(r, Err(WsmanError::Transport { .. })), "{r:?}");
}

#[tokio::test]
async fn raw_send_returns_any_status() {
    let server = TestServer::start(|req| {
        if roxmltree::Document::parse(&req.body).is_err() {
            Reply::soap(400, "bad xml".into())
        } else {
            Reply::soap(200, "<ok/>".into())
        }
    })
    .await;
    let rec = Arc::new(MemoryRecorder::new());
    let c = client(&server.url).with_recorder(rec.clone());
    let raw = match c.send("<s:Envelope><unclosed>").await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(raw.status, 400);
    assert_eq!(raw.body, "bad xml");
    // A request built with the client's headers, sent raw.
    let (id, xml) = c.build_request(&rs_uri(), ns::action::GET, None, "");
    assert!(xml.contains(&id));
    let raw = match c.send(xml.clone()).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(raw.status, 200);
    let ex = rec.take();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[1].request, xml);
    assert_eq!(ex[0].status, Some(400));
    assert!(rec.exchanges().is_empty());
}

#[tokio::test]
async fn identify_end_to_end() {
    let server = TestServer::start(|req| {
        if let Some(deny) = authorized(req) {
            return deny;
        }
        assert!(req.find(ns::IDENTIFY, "Identify").is_some());
        Reply::soap(
            200,
            format!(
                r#"<s:Envelope xmlns:s="{}" xmlns:wsmid="{}"><s:Header/><s:Body><wsmid:IdentifyResponse><wsmid:ProtocolVersion>{}</wsmid:ProtocolVersion><wsmid:ProductVendor>replica-sim</wsmid:ProductVendor><wsmid:ProductVersion>0</wsmid:ProductVersion></wsmid:IdentifyResponse></s:Body></s:Envelope>"#,
                ns::SOAP,
                ns::IDENTIFY,
                ns::WSMAN
            ),
        )
    })
    .await;
    let info = match client(&server.url).identify().await {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(info.product_vendor.as_deref(), Some("replica-sim"));
}

#[tokio::test]
async fn https_to_a_plain_http_server_fails_cleanly() {
    // No TLS server is available without new dependencies; this at least proves the ring
    // provider is installed and a failed handshake is an error, not a panic. The "server"
    // answers the ClientHello with plain HTTP, as a misconfigured port would.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(1);
    let task = tokio::spawn(async move {
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let c = client_with(
        &format!("https://127.0.0.1:{port}/wsman"),
        ClientOptions {
            accept_invalid_certs: true,
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
    );
    let r = c.identify().await;
    assert!(matches!(r, Err(WsmanError::Transport { .. })), "{r:?}");
    task.abort();
}

#[test]
fn seeded_clients_repeat_their_message_ids() {
    let opts = ClientOptions {
        message_id_seed: Some(42),
        ..ClientOptions::default()
    };
    let a = client_with("http://127.0.0.1:1/wsman", opts.clone());
    let b = client_with("http://127.0.0.1:1/wsman", opts);
    assert_eq!(a.next_message_id(), b.next_message_id());
}
