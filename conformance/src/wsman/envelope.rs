//! Request envelopes, as strings.
//!
//! Public so that the runner can start from a well-formed request and bend it into a
//! deliberately malformed one for [`super::WsmanClient::send`]. Prefixes follow winrm.exe
//! (`s a w p n`, wsman.md §1.0); the header order follows the same capture.

use std::fmt::Write as _;
use std::time::Duration;

use super::error::WsmanError;
use super::ns;
use super::types::{EprMode, Param, SelectorSet};
use super::xml::{cdata, escape, is_identifier};

/// The addressing and WS-Management headers of one request.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    /// `a:To`: the endpoint URL.
    pub to: &'a str,
    pub resource_uri: &'a str,
    pub action: &'a str,
    /// Full `uuid:…` MessageID.
    pub message_id: &'a str,
    pub max_envelope_size: u32,
    /// `w:Locale` / `p:DataLocale` `xml:lang`.
    pub locale: &'a str,
    pub selectors: Option<&'a SelectorSet>,
    pub operation_timeout: Duration,
}

const ENVELOPE_OPEN: &str = concat!(
    r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
    r#" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing""#,
    r#" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration""#,
    r#" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd""#,
    r#" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd""#,
    r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#
);

/// `xs:duration` as winrm.exe writes OperationTimeout: `PT60.000S`.
pub fn format_duration(d: Duration) -> String {
    format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
}

fn write_selector_set(out: &mut String, selectors: &SelectorSet) {
    out.push_str("<w:SelectorSet>");
    for (name, value) in selectors.iter() {
        let _ = write!(
            out,
            r#"<w:Selector Name="{}">{}</w:Selector>"#,
            escape(name),
            escape(value)
        );
    }
    out.push_str("</w:SelectorSet>");
}

/// A complete envelope with the standard headers and `body` (already XML) inside `s:Body`.
pub fn envelope(h: &Headers<'_>, body: &str) -> String {
    let mut out = String::with_capacity(1500 + body.len());
    out.push_str(ENVELOPE_OPEN);
    out.push_str("<s:Header>");
    let _ = write!(out, "<a:To>{}</a:To>", escape(h.to));
    let _ = write!(
        out,
        r#"<w:ResourceURI s:mustUnderstand="true">{}</w:ResourceURI>"#,
        escape(h.resource_uri)
    );
    let _ = write!(
        out,
        r#"<a:ReplyTo><a:Address s:mustUnderstand="true">{}</a:Address></a:ReplyTo>"#,
        ns::ANONYMOUS
    );
    let _ = write!(
        out,
        r#"<a:Action s:mustUnderstand="true">{}</a:Action>"#,
        escape(h.action)
    );
    let _ = write!(
        out,
        r#"<w:MaxEnvelopeSize s:mustUnderstand="true">{}</w:MaxEnvelopeSize>"#,
        h.max_envelope_size
    );
    let _ = write!(out, "<a:MessageID>{}</a:MessageID>", escape(h.message_id));
    let lang = escape(h.locale);
    let _ = write!(
        out,
        r#"<w:Locale xml:lang="{lang}" s:mustUnderstand="false"/><p:DataLocale xml:lang="{lang}" s:mustUnderstand="false"/>"#
    );
    if let Some(sel) = h.selectors.filter(|s| !s.is_empty()) {
        write_selector_set(&mut out, sel);
    }
    let _ = write!(
        out,
        "<w:OperationTimeout>{}</w:OperationTimeout>",
        format_duration(h.operation_timeout)
    );
    out.push_str("</s:Header>");
    if body.is_empty() {
        out.push_str("<s:Body/>");
    } else {
        let _ = write!(out, "<s:Body>{body}</s:Body>");
    }
    out.push_str("</s:Envelope>");
    out
}

/// Identify carries no addressing headers at all (DSP0226 §11): an empty header and a bare
/// `wsmid:Identify` body. Its response therefore has no RelatesTo either.
pub fn identify_envelope() -> String {
    format!(
        r#"<s:Envelope xmlns:s="{}" xmlns:wsmid="{}"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"#,
        ns::SOAP,
        ns::IDENTIFY
    )
}

/// `n:Enumerate` body. Child order follows DSP0226: Filter, EnumerationMode,
/// OptimizeEnumeration, MaxElements (MaxElements only means something when optimised).
pub fn enumerate_body(
    filter: Option<&str>,
    optimize: bool,
    max_elements: Option<u32>,
    mode: EprMode,
) -> String {
    let mut out = String::from("<n:Enumerate>");
    if let Some(q) = filter {
        let _ = write!(
            out,
            r#"<w:Filter Dialect="{}">{}</w:Filter>"#,
            ns::WQL_DIALECT,
            escape(q)
        );
    }
    match mode {
        EprMode::Objects => {}
        EprMode::Epr => out.push_str("<w:EnumerationMode>EnumerateEPR</w:EnumerationMode>"),
        EprMode::ObjectAndEpr => {
            out.push_str("<w:EnumerationMode>EnumerateObjectAndEPR</w:EnumerationMode>")
        }
    }
    if optimize {
        out.push_str("<w:OptimizeEnumeration/>");
        if let Some(n) = max_elements {
            let _ = write!(out, "<w:MaxElements>{n}</w:MaxElements>");
        }
    }
    out.push_str("</n:Enumerate>");
    out
}

/// `n:Pull` body.
pub fn pull_body(context: &str, max_elements: Option<u32>) -> String {
    let mut out = format!(
        "<n:Pull><n:EnumerationContext>{}</n:EnumerationContext>",
        escape(context)
    );
    if let Some(n) = max_elements {
        let _ = write!(out, "<n:MaxElements>{n}</n:MaxElements>");
    }
    out.push_str("</n:Pull>");
    out
}

/// `n:Release` body.
pub fn release_body(context: &str) -> String {
    format!(
        "<n:Release><n:EnumerationContext>{}</n:EnumerationContext></n:Release>",
        escape(context)
    )
}

fn write_epr_children(out: &mut String, resource_uri: &str, selectors: &SelectorSet) {
    let _ = write!(
        out,
        "<a:Address>{}</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI>",
        ns::ANONYMOUS,
        escape(resource_uri)
    );
    write_selector_set(out, selectors);
    out.push_str("</a:ReferenceParameters>");
}

fn write_param(
    out: &mut String,
    name: &str,
    param: &Param,
    nested: bool,
) -> Result<(), WsmanError> {
    match param {
        Param::Text(t) => {
            let _ = write!(out, "<p:{name}>{}</p:{name}>", escape(t));
        }
        Param::Epr {
            resource_uri,
            selectors,
        } => {
            let _ = write!(out, "<p:{name}>");
            write_epr_children(out, resource_uri, selectors);
            let _ = write!(out, "</p:{name}>");
        }
        Param::EmbeddedInstance(xml) => {
            let _ = write!(out, "<p:{name}>{}</p:{name}>", cdata(xml));
        }
        Param::Nil => {
            let _ = write!(out, r#"<p:{name} xsi:nil="true"/>"#);
        }
        Param::Array(items) => {
            if nested {
                return Err(WsmanError::InvalidRequest(format!(
                    "parameter {name}: nested arrays cannot be expressed in WS-Management"
                )));
            }
            for item in items {
                write_param(out, name, item, true)?;
            }
        }
    }
    Ok(())
}

/// `p:{Method}_INPUT` body, with `p` bound to the class resource URI as winrm.exe does.
pub fn invoke_body(
    resource_uri: &str,
    method: &str,
    params: &[(&str, Param)],
) -> Result<String, WsmanError> {
    if !is_identifier(method) {
        return Err(WsmanError::InvalidRequest(format!(
            "method name {method:?} is not a WMI identifier"
        )));
    }
    let mut out = format!(r#"<p:{method}_INPUT xmlns:p="{}">"#, escape(resource_uri));
    for (name, param) in params {
        if !is_identifier(name) {
            return Err(WsmanError::InvalidRequest(format!(
                "parameter name {name:?} is not a WMI identifier"
            )));
        }
        write_param(&mut out, name, param, false)?;
    }
    let _ = write!(out, "</p:{method}_INPUT>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsman::xml::{child, elements, is, text_of};

    const RS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ReplicationService";

    fn headers<'a>(sel: Option<&'a SelectorSet>, action: &'a str) -> Headers<'a> {
        Headers {
            to: "http://127.0.0.1:5985/wsman",
            resource_uri: RS,
            action,
            message_id: "uuid:11111111-2222-4333-8444-555555555555",
            max_envelope_size: 512000,
            locale: "en-US",
            selectors: sel,
            operation_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn duration_format() {
        assert_eq!(format_duration(Duration::from_secs(60)), "PT60.000S");
        assert_eq!(format_duration(Duration::from_millis(1500)), "PT1.500S");
    }

    #[test]
    fn header_carries_every_field_by_namespace() {
        let sel = SelectorSet::from([
            ("CreationClassName", "Msvm_ReplicationService"),
            ("Name", "vmms"),
            ("SystemName", "HV-<&>\"'"),
        ]);
        let action = format!("{RS}/InitiateFailback");
        let xml = envelope(&headers(Some(&sel), &action), "");
        let doc = roxmltree::Document::parse(&xml).expect("request parses");
        let env = doc.root_element();
        assert!(is(env, ns::SOAP, "Envelope"));
        let header = child(env, ns::SOAP, "Header").expect("header");
        let body = child(env, ns::SOAP, "Body").expect("body");
        assert_eq!(elements(body).count(), 0);

        let get = |nsu: &str, local: &str| child(header, nsu, local).expect(local);
        assert_eq!(
            get(ns::ADDRESSING, "To").text(),
            Some("http://127.0.0.1:5985/wsman")
        );
        let ru = get(ns::WSMAN, "ResourceURI");
        assert_eq!(ru.text(), Some(RS));
        assert_eq!(ru.attribute((ns::SOAP, "mustUnderstand")), Some("true"));
        let reply = child(get(ns::ADDRESSING, "ReplyTo"), ns::ADDRESSING, "Address").expect("addr");
        assert_eq!(reply.text(), Some(ns::ANONYMOUS));
        assert_eq!(reply.attribute((ns::SOAP, "mustUnderstand")), Some("true"));
        let act = get(ns::ADDRESSING, "Action");
        assert_eq!(act.text(), Some(action.as_str()));
        assert_eq!(act.attribute((ns::SOAP, "mustUnderstand")), Some("true"));
        let mes = get(ns::WSMAN, "MaxEnvelopeSize");
        assert_eq!(mes.text(), Some("512000"));
        assert_eq!(mes.attribute((ns::SOAP, "mustUnderstand")), Some("true"));
        assert_eq!(
            get(ns::ADDRESSING, "MessageID").text(),
            Some("uuid:11111111-2222-4333-8444-555555555555")
        );
        let loc = get(ns::WSMAN, "Locale");
        assert_eq!(loc.attribute((ns::XML, "lang")), Some("en-US"));
        assert_eq!(loc.attribute((ns::SOAP, "mustUnderstand")), Some("false"));
        let dl = get(ns::MS_WSMAN, "DataLocale");
        assert_eq!(dl.attribute((ns::SOAP, "mustUnderstand")), Some("false"));
        assert_eq!(get(ns::WSMAN, "OperationTimeout").text(), Some("PT60.000S"));
        let sels: Vec<(String, String)> = elements(get(ns::WSMAN, "SelectorSet"))
            .map(|s| {
                assert!(is(s, ns::WSMAN, "Selector"));
                (
                    s.attribute("Name").unwrap_or_default().to_string(),
                    text_of(s),
                )
            })
            .collect();
        assert_eq!(sels, sel.0);
    }

    #[test]
    fn no_selector_set_when_empty() {
        let empty = SelectorSet::new();
        let xml = envelope(&headers(Some(&empty), ns::action::GET), "");
        assert!(!xml.contains("SelectorSet"));
    }

    #[test]
    fn identify_is_bare() {
        let xml = identify_envelope();
        let doc = roxmltree::Document::parse(&xml).expect("parses");
        let body = child(doc.root_element(), ns::SOAP, "Body").expect("body");
        assert!(child(body, ns::IDENTIFY, "Identify").is_some());
        let header = child(doc.root_element(), ns::SOAP, "Header").expect("header");
        assert_eq!(elements(header).count(), 0);
    }

    #[test]
    fn enumerate_body_with_wql_and_epr_mode() {
        let q = "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = 'a<b'";
        let body = enumerate_body(Some(q), true, Some(32000), EprMode::Epr);
        let xml = envelope(&headers(None, ns::action::ENUMERATE), &body);
        let doc = roxmltree::Document::parse(&xml).expect("parses");
        let b = child(doc.root_element(), ns::SOAP, "Body").expect("body");
        let en = child(b, ns::ENUMERATION, "Enumerate").expect("Enumerate");
        let names: Vec<(&str, &str)> = elements(en)
            .map(|e| (e.tag_name().namespace().unwrap_or(""), e.tag_name().name()))
            .collect();
        assert_eq!(
            names,
            [
                (ns::WSMAN, "Filter"),
                (ns::WSMAN, "EnumerationMode"),
                (ns::WSMAN, "OptimizeEnumeration"),
                (ns::WSMAN, "MaxElements"),
            ]
        );
        let f = child(en, ns::WSMAN, "Filter").expect("filter");
        assert_eq!(f.attribute("Dialect"), Some(ns::WQL_DIALECT));
        assert_eq!(text_of(f), q);
    }

    #[test]
    fn enumerate_body_plain() {
        assert_eq!(
            enumerate_body(None, false, Some(5), EprMode::Objects),
            "<n:Enumerate></n:Enumerate>"
        );
    }

    #[test]
    fn pull_and_release_bodies() {
        let xml = envelope(
            &headers(None, ns::action::PULL),
            &pull_body("uuid:C", Some(1)),
        );
        let doc = roxmltree::Document::parse(&xml).expect("parses");
        let b = child(doc.root_element(), ns::SOAP, "Body").expect("body");
        let pull = child(b, ns::ENUMERATION, "Pull").expect("pull");
        assert_eq!(
            child(pull, ns::ENUMERATION, "EnumerationContext").and_then(|n| n.text()),
            Some("uuid:C")
        );
        assert_eq!(
            child(pull, ns::ENUMERATION, "MaxElements").and_then(|n| n.text()),
            Some("1")
        );
        let xml = envelope(&headers(None, ns::action::RELEASE), &release_body("uuid:C"));
        let doc = roxmltree::Document::parse(&xml).expect("parses");
        let b = child(doc.root_element(), ns::SOAP, "Body").expect("body");
        assert!(child(b, ns::ENUMERATION, "Release").is_some());
    }

    #[test]
    fn invoke_body_every_param_kind() {
        let cs = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ComputerSystem";
        let inst = r#"<INSTANCE CLASSNAME="X"><PROPERTY NAME="a" TYPE="string"><VALUE>]]></VALUE></PROPERTY></INSTANCE>"#;
        let params = [
            (
                "ComputerSystem",
                Param::Epr {
                    resource_uri: cs.to_string(),
                    selectors: SelectorSet::from([
                        ("CreationClassName", "Msvm_ComputerSystem"),
                        ("Name", "G"),
                    ]),
                },
            ),
            ("RequestedState", Param::text("3 < 4")),
            ("Settings", Param::EmbeddedInstance(inst.to_string())),
            ("Nothing", Param::Nil),
            (
                "List",
                Param::Array(vec![Param::text("a"), Param::text("b")]),
            ),
        ];
        let body = invoke_body(RS, "InitiateFailback", &params).expect("valid");
        let action = format!("{RS}/InitiateFailback");
        let xml = envelope(&headers(None, &action), &body);
        let doc = roxmltree::Document::parse(&xml).expect("parses");
        let b = child(doc.root_element(), ns::SOAP, "Body").expect("body");
        let input = child(b, RS, "InitiateFailback_INPUT").expect("INPUT in class namespace");
        let cs_el = child(input, RS, "ComputerSystem").expect("ComputerSystem");
        assert_eq!(
            child(cs_el, ns::ADDRESSING, "Address").and_then(|n| n.text()),
            Some(ns::ANONYMOUS)
        );
        let rp = child(cs_el, ns::ADDRESSING, "ReferenceParameters").expect("refparams");
        assert_eq!(
            child(rp, ns::WSMAN, "ResourceURI").and_then(|n| n.text()),
            Some(cs)
        );
        assert_eq!(
            elements(child(rp, ns::WSMAN, "SelectorSet").expect("ss")).count(),
            2
        );
        assert_eq!(
            child(input, RS, "RequestedState").map(text_of).as_deref(),
            Some("3 < 4")
        );
        assert_eq!(
            child(input, RS, "Settings").map(text_of).as_deref(),
            Some(inst)
        );
        assert_eq!(
            child(input, RS, "Nothing").and_then(|n| n.attribute((ns::XSI, "nil"))),
            Some("true")
        );
        let list: Vec<String> = elements(input)
            .filter(|e| is(*e, RS, "List"))
            .map(text_of)
            .collect();
        assert_eq!(list, ["a", "b"]);
    }

    #[test]
    fn invoke_body_refuses_bad_names() {
        assert!(matches!(
            invoke_body(RS, "Bad Method", &[]),
            Err(WsmanError::InvalidRequest(_))
        ));
        assert!(matches!(
            invoke_body(RS, "M", &[("x>y", Param::Nil)]),
            Err(WsmanError::InvalidRequest(_))
        ));
        assert!(matches!(
            invoke_body(RS, "M", &[("x", Param::Array(vec![Param::Array(vec![])]))]),
            Err(WsmanError::InvalidRequest(_))
        ));
    }
}
