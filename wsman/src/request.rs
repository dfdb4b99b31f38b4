//! Request envelopes, as strings: the client side of the protocol (the server side reads them
//! with [`crate::envelope::Request::parse`]).
//!
//! Public so that a client can start from a well-formed request and bend it into a
//! deliberately malformed one. Prefixes follow winrm.exe (`s a w p n`,
//! docs/facts.md#request-headers); the
//! header order follows the same capture.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ns;
use crate::writer::escape;

use crate::epr::Epr;
pub use crate::epr::SelectorSet;

/// `w:EnumerationMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EprMode {
    /// No `w:EnumerationMode`: objects only.
    #[default]
    Objects,
    /// `EnumerateEPR`, as libvirt uses to build EPR parameters.
    Epr,
    /// `EnumerateObjectAndEPR`.
    ObjectAndEpr,
}

/// A method parameter (`Invoke`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Escaped text (numbers, enums, booleans, strings).
    Text(String),
    /// A reference: `a:Address` + `a:ReferenceParameters` directly under the parameter
    /// element, with no `a:EndpointReference` wrapper (winrm.exe and libvirt form); a
    /// selector holding a nested reference is sent as one.
    Epr(Epr),
    /// A CIM-XML `<INSTANCE …>` string, sent as CDATA as libvirt does.
    EmbeddedInstance(String),
    /// `xsi:nil="true"`.
    Nil,
    /// An array parameter: the element repeated once per entry. Nested arrays are refused.
    Array(Vec<Param>),
}

impl Param {
    /// A text parameter.
    pub fn text(s: impl Into<String>) -> Self {
        Param::Text(s.into())
    }
}

/// A request that cannot be put on the wire (a name that is not an identifier, a nested
/// array); the text says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Wraps `s` in CDATA the way libvirt sends embedded instances. A `]]>` inside the payload
/// would end the section early, so it is split across two sections: the receiver's parsed
/// text is still exactly `s`.
pub fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// WMI class, method and parameter names are plain identifiers; anything else would not be a
/// valid element name and cannot be escaped, so requests with such names are refused up front.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The addressing and WS-Management headers of one request.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    /// `a:To`: the endpoint URL.
    pub to: &'a str,
    /// `w:ResourceURI`.
    pub resource_uri: &'a str,
    /// `a:Action`.
    pub action: &'a str,
    /// Full `uuid:…` MessageID.
    pub message_id: &'a str,
    /// `w:MaxEnvelopeSize` in octets.
    pub max_envelope_size: u32,
    /// `w:Locale` / `p:DataLocale` `xml:lang`.
    pub locale: &'a str,
    /// `w:SelectorSet`, left out when `None` or empty.
    pub selectors: Option<&'a SelectorSet>,
    /// `w:OperationTimeout`.
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
        sel.write(&mut out);
    }
    let _ = write!(
        out,
        "<w:OperationTimeout>{}</w:OperationTimeout>",
        crate::xsd::format_timeout(h.operation_timeout)
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

fn write_param(
    out: &mut String,
    name: &str,
    param: &Param,
    nested: bool,
) -> Result<(), BuildError> {
    match param {
        Param::Text(t) => {
            let _ = write!(out, "<p:{name}>{}</p:{name}>", escape(t));
        }
        Param::Epr(epr) => {
            let _ = write!(out, "<p:{name}>");
            epr.write_children(out);
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
                return Err(BuildError(format!(
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
) -> Result<String, BuildError> {
    if !is_identifier(method) {
        return Err(BuildError(format!(
            "method name {method:?} is not a WMI identifier"
        )));
    }
    let mut out = format!(r#"<p:{method}_INPUT xmlns:p="{}">"#, escape(resource_uri));
    for (name, param) in params {
        if !is_identifier(name) {
            return Err(BuildError(format!(
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
    use roxmltree::Node;

    fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
        node.is_element()
            && node.tag_name().name() == local
            && node.tag_name().namespace() == Some(ns)
    }

    fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
        node.children().find(|c| is(*c, ns, local))
    }

    fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
        node.children().filter(|c| c.is_element())
    }

    /// Text and CDATA below `node`, concatenated (roxmltree's `text()` stops at the first).
    fn text_of(node: Node<'_, '_>) -> String {
        node.descendants()
            .filter(|d| d.is_text())
            .filter_map(|d| d.text())
            .collect()
    }

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
                Param::Epr(Epr::new(
                    cs,
                    [("CreationClassName", "Msvm_ComputerSystem"), ("Name", "G")],
                )),
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
    fn cdata_round_trips_through_a_parser() {
        let payload = "<INSTANCE>]]>x</INSTANCE>";
        let doc = format!("<r>{}</r>", cdata(payload));
        let parsed = roxmltree::Document::parse(&doc).expect("valid xml");
        assert_eq!(text_of(parsed.root_element()), payload);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("RequestStateChange"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("a<b"));
    }

    /// What the client sends, the server reads back to the same value: a reference
    /// parameter naming an association instance, its keys nested references.
    #[test]
    fn a_nested_reference_parameter_reads_back_on_the_server() {
        let vm = Epr::new(
            "http://h/Msvm_ComputerSystem",
            [("CreationClassName", "Msvm_ComputerSystem"), ("Name", "G")],
        );
        let mut assoc = Epr::new("http://h/Msvm_Assoc", [("Antecedent", vm.path_key())]);
        assoc.refs = vec![("Antecedent".into(), vm)];
        let uri = "http://h/Msvm_ReplicationService";
        let body = invoke_body(uri, "M", &[("Ref", Param::from(&assoc))]).expect("body");
        let doc = format!(
            r#"<r xmlns:a="{}" xmlns:w="{}" xmlns:xsi="{}">{body}</r>"#,
            ns::ADDRESSING,
            ns::WSMAN,
            ns::XSI
        );
        let root = crate::xml::parse(doc.as_bytes()).expect("xml");
        let input =
            crate::body::InvokeInput::parse(root.children.first(), uri, "M").expect("input");
        assert_eq!(input.get("Ref"), Some(&crate::body::ParamValue::Epr(assoc)));
    }

    #[test]
    fn invoke_body_refuses_bad_names() {
        assert!(matches!(
            invoke_body(RS, "Bad Method", &[]),
            Err(BuildError(_))
        ));
        assert!(matches!(
            invoke_body(RS, "M", &[("x>y", Param::Nil)]),
            Err(BuildError(_))
        ));
        assert!(matches!(
            invoke_body(RS, "M", &[("x", Param::Array(vec![Param::Array(vec![])]))]),
            Err(BuildError(_))
        ));
    }
}
