//! The WS-Management endpoint over real HTTP: authentication, Identify, every class of
//! malformed request and its fault, enumeration paging, WQL, EPR modes, method parameters,
//! jobs, and the failover/failback walks seen from both hosts.

use crate::support::*;
use replica_core::profile::Profile;
use replica_core::topology::ProfileSpec;
use replica_wsman::writer::escape;
use std::time::{Duration, Instant};

#[tokio::test]
async fn basic_auth_challenge() {
    within(20, async {
        let sim = start().await;
        let url = sim.url("HV-PRIMARY");
        let (xml, _) = envelope(GET, &format!("{V2}Msvm_ReplicationService"), &[], "", "");
        let anonymous = Client {
            url: url.clone(),
            auth: None,
        };
        for c in [
            anonymous.clone(),
            anonymous.as_user("admin", "wrong"),
            anonymous.as_user("nobody-at-all", "admin"),
            // Not NTLM under Negotiate (tokens that are: tests/it/auth.rs).
            Client {
                url: url.clone(),
                auth: Some("Negotiate bm90LWEtdG9rZW4=".into()),
            },
            Client {
                url: url.clone(),
                auth: Some("Basic !!!not-base64".into()),
            },
        ] {
            let r = c.send(&xml).await;
            assert_eq!(r.status, 401, "{:?}", c.auth);
            let offered: Vec<&str> = r
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(offered, vec!["Negotiate", r#"Basic realm="WSMAN""#]);
            assert!(r.body.is_empty());
        }
        let r = Client::new(url).send(&identify_body()).await;
        assert_eq!(r.status, 200);
    })
    .await;
}

/// The HTTP media type of a WS-Management request: `application/soap+xml` with charset UTF-8
/// or UTF-16 is served (a UTF-16 body with its BOM is decoded), anything else is HTTP 415
/// (cloudsoft/winrm4j issue 72); authentication still comes first, so a stranger gets 401
/// whatever the type. fixtures/wire/content-type.json has the UTF-8 cases.
#[tokio::test]
async fn content_type_is_checked_after_authentication() {
    within(20, async {
        let sim = start().await;
        let url = sim.url("HV-REPLICA");
        let auth = basic(ADMIN.0, ADMIN.1);
        let (get, _) = envelope(
            GET,
            &format!("{V2}Msvm_ComputerSystem"),
            &[
                ("CreationClassName", "Msvm_ComputerSystem"),
                ("Name", "HV-REPLICA"),
            ],
            "",
            "",
        );
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in get.encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let cases: [(Option<&str>, &[u8], u16); 5] = [
            (Some("application/soap+xml;charset=UTF-16"), &utf16, 200),
            (Some("application/soap+xml; charset=utf-16"), &utf16, 200),
            (None, &utf16, 415),
            (None, get.as_bytes(), 415),
            (Some("application/xml"), get.as_bytes(), 415),
        ];
        for (ct, body, status) in cases {
            let mut headers = vec![("Authorization", auth.as_str())];
            headers.extend(ct.map(|ct| ("Content-Type", ct)));
            let r = post(&url, &headers, body).await;
            assert_eq!(r.status, status, "{ct:?}: {}", r.body);
            if status == 415 {
                assert!(r.body.is_empty(), "{}", r.body);
            }
        }
        // No credentials: the challenge, not the media type.
        let r = post(&url, &[], get.as_bytes()).await;
        assert_eq!(r.status, 401);
    })
    .await;
}

#[tokio::test]
async fn identify_authenticated_and_not() {
    within(20, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let r = c.send(&identify_body()).await;
        assert_eq!(r.status, 200);
        let doc = r.doc();
        assert!(find(doc.root_element(), IDENTIFY, "IdentifyResponse").is_some());
        assert_eq!(
            text_of(&doc, IDENTIFY, "ProtocolVersion").as_deref(),
            Some(WSMAN)
        );
        assert_eq!(
            text_of(&doc, IDENTIFY, "ProductVendor").as_deref(),
            Some("Microsoft Corporation")
        );
        assert!(
            text_of(&doc, IDENTIFY, "ProductVersion").is_some_and(|v| v.starts_with("OS: 10."))
        );
        // Test-WSMan without credentials: the header asks for an unauthenticated Identify.
        let anon = Client {
            url: c.url.clone(),
            auth: None,
        };
        let r = anon
            .send_with(&identify_body(), &[("WSMANIDENTIFY", "unauthenticated")])
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            text_of(&r.doc(), IDENTIFY, "ProductVersion").as_deref(),
            Some("OS: 0.0.0 SP: 0.0 Stack: 3.0")
        );
        // ... which is no way around authentication for anything else.
        let (get, _) = envelope(GET, &format!("{V2}Msvm_ReplicationService"), &[], "", "");
        let r = anon
            .send_with(&get, &[("WSMANIDENTIFY", "unauthenticated")])
            .await;
        assert_eq!(r.status, 401);
        // Identify works for a user without rights; nothing else does.
        let r = c.as_user(DENIED.0, DENIED.1).send(&identify_body()).await;
        assert_eq!(r.status, 200);
    })
    .await;
}

/// One malformed request and the fault it must get.
struct Bad {
    name: &'static str,
    user: (&'static str, &'static str),
    request: String,
    /// The MessageID the fault must echo, when the request carried a readable one.
    id: Option<String>,
    subcode: (&'static str, &'static str),
    code: &'static str,
}

fn bad(
    name: &'static str,
    (request, id): (String, String),
    subcode: (&'static str, &'static str),
    code: &'static str,
) -> Bad {
    Bad {
        name,
        user: ADMIN,
        request,
        id: Some(id),
        subcode,
        code,
    }
}

fn wql(query: &str) -> (String, String) {
    envelope(
        ENUMERATE,
        &format!("{V2}*"),
        &[],
        "",
        &wql_enumerate(query, ""),
    )
}

#[tokio::test]
async fn every_malformed_request_class_gets_its_fault() {
    within(30, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-PRIMARY"));
        let cs = format!("{V2}Msvm_ComputerSystem");
        let svc = format!("{V2}Msvm_ReplicationService");
        let w = |l| (WSMAN, l);
        let a = |l| (ADDRESSING, l);
        let n = |l| (ENUMERATION, l);
        let mut cases = vec![
            // Invalid selectors.
            bad(
                "selector the class does not have",
                envelope(GET, &cs, &[("Bogus", "1")], "", ""),
                w("InvalidSelectors"),
                "2150858843",
            ),
            bad(
                "no selectors for a Get",
                envelope(GET, &cs, &[], "", ""),
                w("InvalidSelectors"),
                "2150858842",
            ),
            bad(
                "the same selector twice",
                envelope(GET, &cs, &[("Name", APP_01), ("name", APP_01)], "", ""),
                w("InvalidSelectors"),
                "2150858847",
            ),
            // Unknown resource, or no instance for the selectors.
            bad(
                "unknown class",
                envelope(GET, &format!("{V2}Msvm_Bogus"), &[("Name", "x")], "", ""),
                a("DestinationUnreachable"),
                "2150858752",
            ),
            bad(
                "namespace not served",
                envelope(
                    GET,
                    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OperatingSystem",
                    &[],
                    "",
                    "",
                ),
                a("DestinationUnreachable"),
                "2150858752",
            ),
            bad(
                "no such VM",
                envelope(GET, &cs, &vm_keys("00000000-0000-0000-0000-000000000000"), "", ""),
                a("DestinationUnreachable"),
                "2150858752",
            ),
            bad(
                "a key that names another class",
                envelope(GET, &cs, &[("CreationClassName", "Msvm_Other"), ("Name", APP_01)], "", ""),
                a("DestinationUnreachable"),
                "2150858752",
            ),
            bad(
                "a job that never existed",
                envelope(GET, &format!("{V2}Msvm_ConcreteJob"), &[("InstanceID", "NOPE")], "", ""),
                a("DestinationUnreachable"),
                "2150858752",
            ),
            // Schema errors.
            bad(
                "Enumerate action with a Pull body",
                envelope(ENUMERATE, &cs, &[], "", "<n:Pull/>"),
                w("SchemaValidationError"),
                "2150858817",
            ),
            bad(
                "MaxElements that is not a number",
                envelope(ENUMERATE, &cs, &[], "", "<n:Enumerate><wsman:OptimizeEnumeration/><wsman:MaxElements>many</wsman:MaxElements></n:Enumerate>"),
                w("SchemaValidationError"),
                "2150858817",
            ),
            bad(
                "Invoke body for another method",
                envelope(
                    &format!("{svc}/CommitFailover"),
                    &svc,
                    &service_keys("HV-PRIMARY"),
                    "",
                    &format!(r#"<p:RevertFailover_INPUT xmlns:p="{svc}"/>"#),
                ),
                w("SchemaValidationError"),
                "2150858817",
            ),
            bad(
                "Invoke parameter the method does not have",
                envelope(
                    &format!("{svc}/CommitFailover"),
                    &svc,
                    &service_keys("HV-PRIMARY"),
                    "",
                    &format!(r#"<p:CommitFailover_INPUT xmlns:p="{svc}"><p:Force>true</p:Force></p:CommitFailover_INPUT>"#),
                ),
                w("InvalidParameter"),
                "87",
            ),
            // Unsupported actions.
            bad(
                "WS-Transfer Put",
                envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Put", &cs, &vm_keys(APP_01), "", ""),
                a("ActionNotSupported"),
                "2150858771",
            ),
            bad(
                "WS-Transfer Delete",
                envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", &cs, &vm_keys(APP_01), "", ""),
                a("ActionNotSupported"),
                "2150858771",
            ),
            bad(
                "a method the class does not have",
                envelope(&format!("{svc}/Frobnicate"), &svc, &service_keys("HV-PRIMARY"), "", ""),
                a("ActionNotSupported"),
                "2150858771",
            ),
            // Envelope size.
            bad(
                "response over the request's MaxEnvelopeSize",
                {
                    let (x, id) = envelope(GET, &cs, &vm_keys(APP_01), "", "");
                    (x.replace(">153600<", ">1000<"), id)
                },
                w("EncodingLimit"),
                "2150858824",
            ),
            bad(
                "request over the service's MaxEnvelopeSize",
                envelope(GET, &cs, &vm_keys(APP_01), &format!(r#"<x:Pad xmlns:x="urn:pad">{}</x:Pad>"#, "a".repeat(600_000)), ""),
                w("EncodingLimit"),
                "2150858824",
            ),
            // Filters.
            bad("WQL that does not parse", wql("SELEKT * FROM Msvm_ComputerSystem"), n("CannotProcessFilter"), "2150858778"),
            bad("WQL on an unknown class", wql("SELECT * FROM Msvm_Bogus"), n("CannotProcessFilter"), "2150858778"),
            bad(
                "WQL on an unknown property, even with no instance",
                wql("SELECT * FROM Msvm_ConcreteJob WHERE Bogus = 'x'"),
                n("CannotProcessFilter"),
                "2150858778",
            ),
            bad(
                "a filter dialect the service does not offer",
                envelope(ENUMERATE, &format!("{V2}*"), &[], "", r#"<n:Enumerate><wsman:Filter Dialect="urn:other">x</wsman:Filter></n:Enumerate>"#),
                n("FilterDialectRequestedUnavailable"),
                "2150858777",
            ),
            bad(
                "WQL through a class URI, not .../v2/*",
                envelope(ENUMERATE, &cs, &[], "", &wql_enumerate("SELECT * FROM Msvm_ComputerSystem", "")),
                w("InvalidParameter"),
                "87",
            ),
            // Headers.
            bad(
                "unknown header marked mustUnderstand",
                envelope(GET, &cs, &vm_keys(APP_01), r#"<x:Odd xmlns:x="urn:odd" s:mustUnderstand="true"/>"#, ""),
                (SOAP, "MustUnderstand"),
                "2150858768",
            ),
            bad(
                "negative OperationTimeout",
                {
                    let (x, id) = envelope(GET, &cs, &vm_keys(APP_01), "", "");
                    (x.replace("PT20S", "PT-1S"), id)
                },
                a("InvalidMessageInformationHeader"),
                "2150858767",
            ),
            bad(
                "two Action headers",
                envelope(GET, &cs, &vm_keys(APP_01), &format!("<wsa:Action>{GET}</wsa:Action>"), ""),
                a("InvalidMessageInformationHeader"),
                "2150858767",
            ),
            // Enumeration contexts.
            bad(
                "Pull with a context never issued",
                envelope(PULL, &cs, &[], "", "<n:Pull><n:EnumerationContext>uuid:nope</n:EnumerationContext></n:Pull>"),
                n("InvalidEnumerationContext"),
                "2150858779",
            ),
            bad(
                "Release with a context never issued",
                envelope(RELEASE, &cs, &[], "", "<n:Release><n:EnumerationContext>uuid:nope</n:EnumerationContext></n:Release>"),
                n("InvalidEnumerationContext"),
                "2150858779",
            ),
        ];
        // Access denied: authenticated, but without rights.
        for (name, req) in [
            ("Get without rights", envelope(GET, &cs, &vm_keys(APP_01), "", "")),
            ("WQL without rights", wql("SELECT * FROM Msvm_ComputerSystem")),
            (
                "Invoke without rights",
                envelope(&format!("{svc}/CommitFailover"), &svc, &service_keys("HV-PRIMARY"), "", ""),
            ),
        ] {
            cases.push(Bad {
                user: DENIED,
                ..bad(name, req, w("AccessDenied"), "5")
            });
        }
        // Not SOAP at all: no MessageID to echo.
        for (name, body) in [
            ("empty body", String::new()),
            ("not XML", "<s:Envelope".to_string()),
            ("binary", "\u{0}\u{1}\u{2}".to_string()),
            (
                "SOAP 1.1 envelope",
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#.to_string(),
            ),
            (
                "an entity bomb",
                r#"<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>"#.to_string(),
            ),
        ] {
            cases.push(Bad {
                id: None,
                ..bad(name, (body, String::new()), w("SchemaValidationError"), "2150858817")
            });
        }
        for case in &cases {
            let r = c.as_user(case.user.0, case.user.1).send(&case.request).await;
            let f = fault_of(&r);
            let expected_id = case.id.clone().filter(|i| !i.is_empty());
            assert_eq!(
                (f.status, f.subcode.clone(), f.code.clone(), f.relates_to.clone()),
                (
                    500,
                    Some((case.subcode.0.to_string(), case.subcode.1.to_string())),
                    Some(case.code.to_string()),
                    expected_id,
                ),
                "{}: {}",
                case.name,
                r.body
            );
        }
        // MustUnderstand is a top-level Code, not a subcode; the others follow their spec's
        // fault action.
        let must = cases.iter().find(|c| c.subcode.1 == "MustUnderstand");
        let r = c.send(&must.map(|c| c.request.clone()).unwrap_or_default()).await;
        assert!(r.body.contains("<s:Value>s:MustUnderstand</s:Value>"), "{}", r.body);
        let r = c.send(&wql("SELEKT").0).await;
        assert_eq!(
            fault_of(&r).action.as_deref(),
            Some("http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault")
        );
        // A body too large for the HTTP layer still gets the envelope-size fault.
        let huge = vec![b'a'; 5 * 1024 * 1024];
        let r = c.send(&String::from_utf8_lossy(&huge)).await;
        let f = fault_of(&r);
        assert_eq!(
            (f.status, f.subcode),
            (500, Some((WSMAN.to_string(), "EncodingLimit".to_string())))
        );
        // And the simulator is still there.
        assert_eq!(c.vm("app-01").await.get("Name").map(String::as_str), Some(APP_01));
    })
    .await;
}

fn optimized(max: Option<u32>) -> String {
    let max = max.map_or(String::new(), |m| {
        format!("<wsman:MaxElements>{m}</wsman:MaxElements>")
    });
    format!("<wsman:OptimizeEnumeration/>{max}")
}

fn names(doc: &roxmltree::Document<'_>) -> Vec<String> {
    items(doc)
        .into_iter()
        .map(|i| row(i).get("Name").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn enumeration_pages_with_max_elements_pull_and_release() {
    within(20, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-PRIMARY"));
        let cs = format!("{V2}Msvm_ComputerSystem");
        // The host and its four VMs: five instances.
        let body = |extra: String| format!("<n:Enumerate>{extra}</n:Enumerate>");
        let r = c
            .ok(envelope(ENUMERATE, &cs, &[], "", &body(optimized(Some(2)))))
            .await;
        let doc = r.doc();
        let first = names(&doc);
        assert_eq!(first.len(), 2, "{}", r.body);
        assert!(
            find(doc.root_element(), WSMAN, "Items").is_some(),
            "optimized items travel in w:Items"
        );
        let ctx = text_of(&doc, ENUMERATION, "EnumerationContext").unwrap_or_default();
        assert!(ctx.starts_with("uuid:"));
        let pull = |max: &str| {
            format!(
                "<n:Pull><n:EnumerationContext>{ctx}</n:EnumerationContext>{max}</n:Pull>"
            )
        };
        // Pull without MaxElements: one item (WinRM's default, which libvirt relies on).
        let r = c.ok(envelope(PULL, &cs, &[], "", &pull(""))).await;
        let doc = r.doc();
        assert_eq!(names(&doc).len(), 1);
        assert!(
            find(doc.root_element(), ENUMERATION, "Items").is_some(),
            "Pull items travel in n:Items"
        );
        assert_eq!(
            text_of(&doc, ENUMERATION, "EnumerationContext").as_deref(),
            Some(ctx.as_str())
        );
        // Release ends it; the context is gone afterwards.
        let release = format!(
            "<n:Release><n:EnumerationContext>{ctx}</n:EnumerationContext></n:Release>"
        );
        let r = c.ok(envelope(RELEASE, &cs, &[], "", &release)).await;
        assert_eq!(
            text_of(&r.doc(), ADDRESSING, "Action").as_deref(),
            Some("http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse")
        );
        let r = c.send(&envelope(PULL, &cs, &[], "", &pull("")).0).await;
        assert_eq!(
            fault_of(&r).subcode.map(|s| s.1).as_deref(),
            Some("InvalidEnumerationContext")
        );

        // Non-optimized: the context first, then Pulls (n:MaxElements, WinRb's form) to the end,
        // where the context is left out and EndOfSequence is set.
        let r = c.ok(envelope(ENUMERATE, &cs, &[], "", "<n:Enumerate/>")).await;
        let doc = r.doc();
        assert!(items(&doc).is_empty());
        let mut ctx = text_of(&doc, ENUMERATION, "EnumerationContext");
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(cx) = ctx.take() {
            let body = format!(
                "<n:Pull><n:EnumerationContext>{cx}</n:EnumerationContext><n:MaxElements>2</n:MaxElements></n:Pull>"
            );
            let r = c.ok(envelope(PULL, &cs, &[], "", &body)).await;
            let doc = r.doc();
            all.extend(names(&doc));
            pages += 1;
            ctx = text_of(&doc, ENUMERATION, "EnumerationContext");
            if ctx.is_none() {
                assert!(find(doc.root_element(), ENUMERATION, "EndOfSequence").is_some());
            }
        }
        assert_eq!((all.len(), pages), (5, 3), "{all:?}");
        assert_eq!(all.iter().filter(|n| n.starts_with("6B1F4A52")).count(), 4);

        // Everything at once: no context, EndOfSequence.
        let r = c
            .ok(envelope(ENUMERATE, &cs, &[], "", &body(optimized(Some(32000)))))
            .await;
        let doc = r.doc();
        assert_eq!(names(&doc).len(), 5);
        assert!(text_of(&doc, ENUMERATION, "EnumerationContext").is_none());
        assert!(find(doc.root_element(), WSMAN, "EndOfSequence").is_some());
    })
    .await;
}

#[tokio::test]
async fn pages_shrink_to_fit_max_envelope_size() {
    within(20, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let query = "SELECT * FROM Msvm_VirtualSystemSettingData";
        let body = wql_enumerate(query, &optimized(Some(32000)));
        let everything = c.query(query).await.len();
        assert!(everything > 10, "{everything}");
        // 6000 octets hold a few items, not all: WinRM sends fewer, with a context to go on.
        let (xml, id) = envelope(ENUMERATE, &format!("{V2}*"), &[], "", &body);
        let r = c.ok((xml.replace(">153600<", ">6000<"), id)).await;
        assert!(r.body.len() <= 6000, "{}", r.body.len());
        let doc = r.doc();
        let mut got = items(&doc).len();
        assert!(got >= 1 && got < everything, "{got}");
        let mut ctx = text_of(&doc, ENUMERATION, "EnumerationContext");
        while let Some(cx) = ctx.take() {
            let pull = format!(
                "<n:Pull><n:EnumerationContext>{cx}</n:EnumerationContext><n:MaxElements>32000</n:MaxElements></n:Pull>"
            );
            let (xml, id) = envelope(PULL, &format!("{V2}*"), &[], "", &pull);
            let r = c.ok((xml.replace(">153600<", ">6000<"), id)).await;
            assert!(r.body.len() <= 6000);
            let doc = r.doc();
            got += items(&doc).len();
            ctx = text_of(&doc, ENUMERATION, "EnumerationContext");
        }
        assert_eq!(got, everything);
    })
    .await;
}

#[tokio::test]
async fn wql_by_element_name_and_instance_id() {
    within(20, async {
        let sim = start().await;
        let primary = Client::new(sim.url("HV-PRIMARY"));
        let replica = Client::new(sim.url("HV-REPLICA"));
        let vm = primary.vm("app-01").await;
        assert_eq!(vm.get("Name").map(String::as_str), Some(APP_01));
        assert_eq!(vm.get("ReplicationMode").map(String::as_str), Some("1"));
        // The same GUID on the replica host, in mode Replica.
        let vm = replica.vm("APP-01").await;
        assert_eq!(vm.get("Name").map(String::as_str), Some(APP_01));
        assert_eq!(vm.get("ReplicationMode").map(String::as_str), Some("2"));
        // AND, integers, and a query that matches nothing.
        let rows = primary
            .query(
                "SELECT * FROM Msvm_ComputerSystem WHERE ReplicationMode = 1 AND EnabledState = 2",
            )
            .await;
        let mut names: Vec<_> = rows.iter().filter_map(|r| r.get("ElementName")).collect();
        names.sort();
        assert_eq!(names, ["db-01", "web-01"]);
        assert!(
            primary
                .query("SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'nope'")
                .await
                .is_empty()
        );
        // Each readable class answers a WQL query.
        for class in [
            "Msvm_ReplicationService",
            "Msvm_ReplicationRelationship",
            "Msvm_ReplicationSettingData",
            "Msvm_VirtualSystemSettingData",
            "Msvm_ReplicationServiceSettingData",
            "Msvm_ReplicationAuthorizationSettingData",
        ] {
            let rows = replica.query(&format!("SELECT * FROM {class}")).await;
            assert!(!rows.is_empty(), "{class}");
        }
        let svc = replica.query("SELECT * FROM Msvm_ReplicationService").await;
        assert_eq!(
            svc.first()
                .and_then(|s| s.get("SystemName"))
                .map(String::as_str),
            Some("HV-REPLICA")
        );
        // A job, by InstanceID, as libvirt polls it.
        let (code, job) = replica
            .service_call("HV-REPLICA", "InitiateFailover", WEB_01, "")
            .await;
        assert_eq!(code, 4096);
        let Some(job) = job else { panic!("no job") };
        let rows = replica
            .query(&format!(
                "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job}'"
            ))
            .await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("JobType").map(String::as_str), Some("97"));
        // The job lives on the host that runs it.
        assert!(
            primary
                .query(&format!(
                    "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job}'"
                ))
                .await
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn epr_and_object_and_epr_modes_feed_method_calls() {
    within(20, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let q = "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'web-01'";
        let mode = |m: &str| format!("{}<wsman:EnumerationMode>{m}</wsman:EnumerationMode>", optimized(Some(10)));
        let r = c
            .ok(envelope(ENUMERATE, &format!("{V2}*"), &[], "", &wql_enumerate(q, &mode("EnumerateEPR"))))
            .await;
        let doc = r.doc();
        let [epr] = items(&doc)[..] else {
            panic!("{}", r.body)
        };
        assert!(epr.has_tag_name((ADDRESSING, "EndpointReference")));
        assert_eq!(text_of(&doc, WSMAN, "ResourceURI"), Some(format!("{V2}Msvm_ComputerSystem")));
        let selectors: Vec<_> = find(epr, WSMAN, "SelectorSet")
            .map(|s| {
                s.children()
                    .filter_map(|x| Some((x.attribute("Name")?.to_string(), x.text()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            selectors,
            [
                ("CreationClassName".to_string(), "Msvm_ComputerSystem".to_string()),
                ("Name".to_string(), WEB_01.to_string())
            ]
        );
        // libvirt copies Address and ReferenceParameters into the parameter element.
        let inner: String = {
            let start = r.body.find("<a:EndpointReference>").unwrap_or(0) + "<a:EndpointReference>".len();
            let end = r.body.find("</a:EndpointReference>").unwrap_or(r.body.len());
            r.body[start..end].to_string()
        };
        let param = format!(r#"<p:ComputerSystem xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}">{inner}</p:ComputerSystem>"#);
        let (code, job, _) = c
            .invoke("Msvm_ReplicationService", &service_keys("HV-REPLICA"), "InitiateFailover", &param)
            .await;
        assert_eq!((code, job.is_some()), (4096, true));

        let r = c
            .ok(envelope(ENUMERATE, &format!("{V2}*"), &[], "", &wql_enumerate(q, &mode("EnumerateObjectAndEPR"))))
            .await;
        let doc = r.doc();
        let [item] = items(&doc)[..] else {
            panic!("{}", r.body)
        };
        assert!(item.has_tag_name((WSMAN, "Item")));
        let kids: Vec<_> = item.children().filter(|n| n.is_element()).collect();
        assert_eq!(kids.len(), 2);
        assert!(kids[0].has_tag_name((format!("{V2}Msvm_ComputerSystem").as_str(), "Msvm_ComputerSystem")));
        assert_eq!(row(kids[0]).get("ReplicationState").map(String::as_str), Some("12"));
        assert!(kids[1].has_tag_name((ADDRESSING, "EndpointReference")));
    })
    .await;
}

fn rsd_instance(recovery: &str) -> String {
    format!(
        r#"<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="RecoveryConnectionPoint" TYPE="string"><VALUE>{recovery}</VALUE></PROPERTY><PROPERTY.ARRAY NAME="IncludedDisks" TYPE="string"><VALUE.ARRAY><VALUE>disk-0</VALUE></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>"#
    )
}

async fn fail_over_and_commit(c: &Client, vm: &str) {
    for method in ["InitiateFailover", "CommitFailover"] {
        let (code, job) = c.service_call("HV-REPLICA", method, vm, "").await;
        assert_eq!(code, 4096, "{method}");
        let (_, last) = c.wait_job(&job.unwrap_or_default()).await;
        assert_eq!(
            last.get("JobState").map(String::as_str),
            Some("7"),
            "{method}"
        );
    }
}

#[tokio::test]
async fn embedded_instances_in_cdata_or_escaped_and_output_parameters() {
    within(30, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        fail_over_and_commit(&c, WEB_01).await;
        fail_over_and_commit(&c, APP_01).await;
        // The same embedded instance as CDATA (libvirt) and as escaped text (pypsrp, pywinrm).
        let cdata = format!(
            "<p:ReplicationSettingData><![CDATA[{}]]></p:ReplicationSettingData>",
            rsd_instance("HV-PRIMARY")
        );
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailback", WEB_01, &cdata)
            .await;
        assert_eq!((code, job.is_some()), (4096, true));
        let escaped = format!(
            "<p:ReplicationSettingData>{}</p:ReplicationSettingData>",
            escape(&rsd_instance("HV-PRIMARY"))
        );
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailback", APP_01, &escaped)
            .await;
        assert_eq!((code, job.is_some()), (4096, true));
        // An embedded instance that is not CIM-XML is an invalid parameter, not a crash.
        let broken = "<p:ReplicationSettingData>&lt;INSTANCE</p:ReplicationSettingData>";
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailback", APP_01, broken)
            .await;
        assert_eq!((code, job), (32773, None));
        // A REF output parameter: TestReplicaSystem's ResultingSystem names the test VM.
        let (code, _, r) = c
            .invoke(
                "Msvm_ReplicationService",
                &service_keys("HV-REPLICA"),
                "TestReplicaSystem",
                &vm_ref("p:ComputerSystem", "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03"),
            )
            .await;
        assert_eq!(code, 4096, "{}", r.body);
        let doc = r.doc();
        let svc = format!("{V2}Msvm_ReplicationService");
        let resulting = find(doc.root_element(), &svc, "ResultingSystem");
        let test_vm = resulting
            .and_then(|n| find(n, WSMAN, "Selector"))
            .and_then(|_| {
                resulting?
                    .descendants()
                    .find(|d| d.attribute("Name") == Some("Name"))?
                    .text()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no ResultingSystem: {}", r.body));
        let rows = c
            .query(&format!(
                "SELECT * FROM Msvm_ComputerSystem WHERE Name = '{test_vm}'"
            ))
            .await;
        assert_eq!(rows.len(), 1);
        // A string-array output parameter holding embedded instances.
        let primary = Client::new(sim.url("HV-PRIMARY"));
        let (code, _, r) = primary
            .invoke(
                "Msvm_ReplicationService",
                &service_keys("HV-PRIMARY"),
                "GetReplicationStatistics",
                &vm_ref("p:ComputerSystem", "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03"),
            )
            .await;
        assert_eq!(code, 0, "{}", r.body);
        let stats = text_of(&r.doc(), &svc, "ReplicationStatistics").unwrap_or_default();
        assert!(
            stats.starts_with(r#"<INSTANCE CLASSNAME="Msvm_ReplicationStatistics">"#),
            "{}",
            r.body
        );
    })
    .await;
}

#[tokio::test]
async fn failback_job_runs_visibly_and_ends_within_about_a_second() {
    within(30, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        fail_over_and_commit(&c, WEB_01).await;
        let rsd = format!(
            "<p:ReplicationSettingData>{}</p:ReplicationSettingData>",
            escape(&rsd_instance("HV-PRIMARY"))
        );
        let started = Instant::now();
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailback", WEB_01, &rsd)
            .await;
        assert_eq!(code, 4096);
        let job = job.unwrap_or_default();
        // While the job runs the VM shows 13 (Failback in progress, the page's WaitingForFailback).
        assert_eq!(
            c.vm("web-01")
                .await
                .get("ReplicationState")
                .map(String::as_str),
            Some("13")
        );
        let (seen, last) = c.wait_job(&job).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2500), "{took:?}");
        assert!(
            seen.iter().any(|(s, _)| *s == 4),
            "never seen Running: {seen:?}"
        );
        assert!(
            seen.iter().all(|(s, _)| [2, 3, 4, 7].contains(s)),
            "{seen:?}"
        );
        let percents: Vec<u32> = seen.iter().map(|(_, p)| *p).collect();
        assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
        assert!(
            percents.iter().filter(|p| **p > 0 && **p < 100).count() >= 2,
            "{percents:?}"
        );
        assert_eq!(seen.last(), Some(&(7, 100)));
        assert_eq!(last.get("JobType").map(String::as_str), Some("124"));
        assert_eq!(last.get("ErrorCode").map(String::as_str), Some("0"));
        assert_eq!(
            c.vm("web-01")
                .await
                .get("ReplicationState")
                .map(String::as_str),
            Some("14")
        );
        // Get works on the job EPR as the method returned it (InstanceID + __cimnamespace).
        let r = c
            .ok(envelope(
                GET,
                &format!("{V2}Msvm_ConcreteJob"),
                &[
                    ("InstanceID", job.as_str()),
                    ("__cimnamespace", "root/virtualization/v2"),
                ],
                "",
                "",
            ))
            .await;
        assert_eq!(
            row(items_or_body(&r.doc()))
                .get("JobState")
                .map(String::as_str),
            Some("7")
        );
    })
    .await;
}

/// The instance in a GetResponse body.
fn items_or_body<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> roxmltree::Node<'a, 'i> {
    find(doc.root_element(), SOAP, "Body")
        .and_then(|b| b.first_element_child())
        .unwrap_or_else(|| doc.root_element())
}

#[tokio::test]
async fn failing_job_carries_error_code_and_description() {
    within(20, async {
        // The profile where a call in the wrong state starts a job that fails with 32775.
        let mut config = config();
        config.topology.profile = Some(ProfileSpec::Named("wrong-state-job".into()));
        let sim = start_with(config).await;
        let c = Client::new(sim.url("HV-REPLICA"));
        // CommitFailover on a VM that never failed over.
        let (code, job) = c
            .service_call("HV-REPLICA", "CommitFailover", APP_01, "")
            .await;
        assert_eq!(code, 4096);
        let (seen, last) = c.wait_job(&job.unwrap_or_default()).await;
        assert_eq!(seen.last().map(|s| s.0), Some(10), "{seen:?}");
        assert_eq!(last.get("ErrorCode").map(String::as_str), Some("32775"));
        assert!(
            last.get("ErrorDescription").is_some_and(|d| !d.is_empty()),
            "{last:?}"
        );
        assert_eq!(last.get("Status").map(String::as_str), Some("Error"));
        // GetError gives it as an embedded Msvm_Error.
        let id = last.get("InstanceID").cloned().unwrap_or_default();
        let (code, _, r) = c
            .invoke(
                "Msvm_ConcreteJob",
                &[("InstanceID", id.as_str())],
                "GetError",
                "",
            )
            .await;
        assert_eq!(code, 0);
        let err = text_of(&r.doc(), &format!("{V2}Msvm_ConcreteJob"), "Error").unwrap_or_default();
        assert!(err.contains(r#"CLASSNAME="Msvm_Error""#), "{}", r.body);
        // The default profile refuses at once instead.
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let (code, job) = c
            .service_call("HV-REPLICA", "CommitFailover", APP_01, "")
            .await;
        assert_eq!((code, job), (32775, None));
    })
    .await;
}

#[tokio::test]
async fn ended_jobs_stay_readable_for_the_configured_retention() {
    within(20, async {
        let mut config = config();
        config.topology.profile = Some(ProfileSpec::Custom(Profile {
            job_ms: 200,
            job_retention_ms: 600,
            ..Profile::default()
        }));
        let sim = start_with(config).await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailover", WEB_01, "")
            .await;
        assert_eq!(code, 4096);
        let job = job.unwrap_or_default();
        let (_, last) = c.wait_job(&job).await;
        assert_eq!(last.get("JobState").map(String::as_str), Some("7"));
        assert_eq!(
            last.get("TimeBeforeRemoval").map(String::as_str),
            Some("P0DT0H0M0.600S")
        );
        let get = || {
            envelope(
                GET,
                &format!("{V2}Msvm_ConcreteJob"),
                &[("InstanceID", job.as_str())],
                "",
                "",
            )
        };
        assert_eq!(c.send(&get().0).await.status, 200);
        tokio::time::sleep(Duration::from_millis(900)).await;
        let r = c.send(&get().0).await;
        assert_eq!(
            fault_of(&r).subcode.map(|s| s.1).as_deref(),
            Some("DestinationUnreachable")
        );
        assert!(
            c.query(&format!(
                "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{job}'"
            ))
            .await
            .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn read_only_credentials_read_but_calls_answer_access_denied() {
    within(20, async {
        let mut config = config();
        config.credentials.push(replica_sim::Credential {
            user: "viewer".into(),
            pass: "viewer".into(),
            read_only: true,
        });
        let sim = start_with(config).await;
        let c = Client::new(sim.url("HV-REPLICA")).as_user("viewer", "viewer");
        assert_eq!(
            c.vm("web-01")
                .await
                .get("ReplicationState")
                .map(String::as_str),
            Some("3")
        );
        let (code, job) = c
            .service_call("HV-REPLICA", "InitiateFailover", WEB_01, "")
            .await;
        assert_eq!((code, job), (32769, None));
    })
    .await;
}

#[tokio::test]
async fn prefixes_do_not_matter_only_namespace_uris() {
    within(20, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-PRIMARY"));
        let uri = format!("{V2}Msvm_ComputerSystem");
        let sel = r#"Name="CreationClassName">Msvm_ComputerSystem"#;
        let forms = [
            // pywinrm: env/a/w/p, mustUnderstand without a prefix.
            format!(
                r#"<env:Envelope xmlns:env="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><env:Header><a:To>http://windows-host:5985/wsman</a:To><a:ReplyTo><a:Address mustUnderstand="true">{ANONYMOUS}</a:Address></a:ReplyTo><w:MaxEnvelopeSize mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>uuid:P1</a:MessageID><w:Locale mustUnderstand="false" xml:lang="en-US"/><p:DataLocale mustUnderstand="false" xml:lang="en-US"/><w:OperationTimeout>PT20S</w:OperationTimeout><w:ResourceURI mustUnderstand="true">{uri}</w:ResourceURI><a:Action mustUnderstand="true">{GET}</a:Action><w:SelectorSet><w:Selector {sel}</w:Selector><w:Selector Name="Name">{APP_01}</w:Selector></w:SelectorSet></env:Header><env:Body/></env:Envelope>"#
            ),
            // Default namespaces everywhere, and the p: prefix on the addressing namespace.
            format!(
                r#"<Envelope xmlns="{SOAP}"><Header><p:Action xmlns:p="{ADDRESSING}">{GET}</p:Action><p:MessageID xmlns:p="{ADDRESSING}">uuid:P1</p:MessageID><ResourceURI xmlns="{WSMAN}">{uri}</ResourceURI><SelectorSet xmlns="{WSMAN}"><Selector {sel}</Selector><Selector Name="Name"> {APP_01} </Selector></SelectorSet></Header><Body/></Envelope>"#
            ),
            // Odd prefixes, headers in another order.
            format!(
                r#"<x1:Envelope xmlns:x1="{SOAP}" xmlns:s="urn:not-soap" xmlns:x2="{ADDRESSING}" xmlns:x3="{WSMAN}"><x1:Body></x1:Body><x1:Header><x3:SelectorSet><x3:Selector Name="Name">{APP_01}</x3:Selector><x3:Selector {sel}</x3:Selector></x3:SelectorSet><x3:ResourceURI x1:mustUnderstand="1">{uri}</x3:ResourceURI><x2:MessageID>uuid:P1</x2:MessageID><x2:Action x1:mustUnderstand="1">{GET}</x2:Action></x1:Header></x1:Envelope>"#
            ),
        ];
        let mut bodies = Vec::new();
        for f in &forms {
            let r = c.send(f).await;
            assert_eq!(r.status, 200, "{}\n{f}", r.body);
            let doc = r.doc();
            assert_eq!(text_of(&doc, ADDRESSING, "RelatesTo").as_deref(), Some("uuid:P1"));
            bodies.push(row(items_or_body(&doc)));
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(bodies[0].get("ElementName").map(String::as_str), Some("app-01"));
        // The SOAP 1.1 namespace under the s: prefix is not SOAP 1.2.
        let soap11 = forms[0].replace(SOAP, "http://schemas.xmlsoap.org/soap/envelope/");
        let f = fault_of(&c.send(&soap11).await);
        assert_eq!(f.subcode.map(|s| s.1).as_deref(), Some("SchemaValidationError"));
    })
    .await;
}

/// Mode and state of a VM on one host, from a WQL lookup by ElementName.
async fn view(c: &Client, name: &str) -> (String, String) {
    let vm = c.vm(name).await;
    let get = |k: &str| vm.get(k).cloned().unwrap_or_default();
    (get("ReplicationMode"), get("ReplicationState"))
}

async fn run_job(c: &Client, code_job: (u32, Option<String>), what: &str) {
    assert_eq!(code_job.0, 4096, "{what}");
    let (_, last) = c.wait_job(&code_job.1.unwrap_or_default()).await;
    assert_eq!(
        last.get("JobState").map(String::as_str),
        Some("7"),
        "{what}: {last:?}"
    );
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn planned_failover_reverse_and_failback_change_both_hosts_views() {
    within(40, async {
        let mut config = config();
        config.clock = replica_sim::ClockMode::Realtime { speed: 4.0 };
        let sim = start_with(config).await;
        let p = Client::new(sim.url("HV-PRIMARY"));
        let r = Client::new(sim.url("HV-REPLICA"));
        let both = || async { (view(&p, "app-01").await, view(&r, "app-01").await) };
        assert_eq!(both().await, (s("1", "3"), s("2", "3")));

        let prepare = p
            .invoke("Msvm_ComputerSystem", &vm_keys(APP_01), "RequestReplicationStateChange", "<p:RequestedState>4</p:RequestedState>")
            .await;
        run_job(&p, (prepare.0, prepare.1), "prepare").await;
        assert_eq!(both().await, (s("1", "4"), s("2", "3")), "prepared on the primary");

        run_job(&r, r.service_call("HV-REPLICA", "InitiateFailover", APP_01, "").await, "failover").await;
        let after = both().await;
        assert_eq!(after.1, s("2", "5"), "Recovered on the replica");
        let vm = r.vm("app-01").await;
        assert_eq!(vm.get("FailedOverReplicationType").map(String::as_str), Some("3"), "planned");

        run_job(&r, r.service_call("HV-REPLICA", "CommitFailover", APP_01, "").await, "commit").await;
        assert_eq!(both().await.1, s("2", "6"), "Committed");

        let rsd = format!(
            "<p:ReplicationSettingData>{}</p:ReplicationSettingData>",
            escape(&rsd_instance("HV-PRIMARY"))
        );
        run_job(&r, r.service_call("HV-REPLICA", "ReverseReplicationRelationship", APP_01, &rsd).await, "reverse").await;
        assert_eq!(both().await, (s("2", "3"), s("1", "3")), "the old replica is the primary");
        // The relationship objects agree with the VM rows, on both sides.
        let rel = r
            // WQL strings escape a backslash with a backslash.
            .query(&format!("SELECT * FROM Msvm_ReplicationRelationship WHERE InstanceID = 'Microsoft:{APP_01}\\\\HVR\\\\0'"))
            .await;
        assert_eq!(rel.first().and_then(|x| x.get("ReplicationState")).map(String::as_str), Some("3"));

        // Failback, host to host: the same walk in the other direction closes the circle.
        let prepare = r
            .invoke("Msvm_ComputerSystem", &vm_keys(APP_01), "RequestReplicationStateChange", "<p:RequestedState>4</p:RequestedState>")
            .await;
        run_job(&r, (prepare.0, prepare.1), "prepare back").await;
        run_job(&p, p.service_call("HV-PRIMARY", "InitiateFailover", APP_01, "").await, "failover back").await;
        assert_eq!(both().await.0, s("2", "5"));
        run_job(&p, p.service_call("HV-PRIMARY", "CommitFailover", APP_01, "").await, "commit back").await;
        run_job(&p, p.service_call("HV-PRIMARY", "ReverseReplicationRelationship", APP_01, "").await, "reverse back").await;
        assert_eq!(both().await, (s("1", "3"), s("2", "3")), "back where it started");
        // Each host keeps its own jobs.
        let pj = p.query("SELECT * FROM Msvm_ConcreteJob").await.len();
        let rj = r.query("SELECT * FROM Msvm_ConcreteJob").await.len();
        assert_eq!((pj, rj), (4, 4));
    })
    .await;
}

#[tokio::test]
async fn every_modelled_method_answers_with_a_documented_code() {
    use replica_core::methods::{METHODS, ParamKind};
    use replica_core::ops::WmiClass;
    within(30, async {
        let sim = start().await;
        let c = Client::new(sim.url("HV-REPLICA"));
        let (_, job) = c
            .service_call("HV-REPLICA", "InitiateFailover", WEB_01, "")
            .await;
        let job = job.unwrap_or_default();
        for m in METHODS {
            let (class, selectors): (&str, Vec<(&str, &str)>) = match m.class {
                WmiClass::ReplicationService => {
                    ("Msvm_ReplicationService", service_keys("HV-REPLICA"))
                }
                WmiClass::ComputerSystem => ("Msvm_ComputerSystem", vm_keys(APP_01)),
                WmiClass::ConcreteJob => ("Msvm_ConcreteJob", vec![("InstanceID", job.as_str())]),
                WmiClass::VirtualSystemManagementService => (
                    "Msvm_VirtualSystemManagementService",
                    vec![
                        ("CreationClassName", "Msvm_VirtualSystemManagementService"),
                        ("Name", "vmms"),
                        ("SystemCreationClassName", "Msvm_ComputerSystem"),
                        ("SystemName", "HV-REPLICA"),
                    ],
                ),
                _ => continue,
            };
            // References name a VM; other parameters are left out (NULL).
            let params: String = m
                .inputs
                .iter()
                .filter_map(|(name, kind)| match kind {
                    ParamKind::Ref("Msvm_ComputerSystem") => {
                        Some(vm_ref(&format!("p:{name}"), APP_01))
                    }
                    ParamKind::U16 => Some(format!("<p:{name}>3</p:{name}>")),
                    _ => None,
                })
                .collect();
            let (code, job, r) = c.invoke(class, &selectors, m.name, &params).await;
            let documented = [0, 1, 4096].contains(&code) || (32768..=32779).contains(&code);
            assert!(documented, "{class}.{}: ReturnValue {code}", m.name);
            assert_eq!(
                job.is_some(),
                code == 4096,
                "{class}.{}: {}",
                m.name,
                r.body
            );
            for out in m.outputs {
                let uri = format!("{V2}{class}");
                assert!(
                    find(r.doc().root_element(), &uri, out).is_some(),
                    "{class}.{}: no {out} in {}",
                    m.name,
                    r.body
                );
            }
        }
    })
    .await;
}
