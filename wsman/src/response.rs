//! Response parsing, the client side of the protocol (the server side writes responses with
//! [`crate::writer`]): the crate's one XML reader ([`crate::xml`]) with limits sized for
//! answers ([`RESPONSE_LIMITS`]), by namespace URI and local name only.
//!
//! Everything here works on server-supplied text, so nothing may panic: missing pieces become
//! [`ResponseError::Protocol`] (or a default where WinRM is known to omit a part).

use std::collections::BTreeMap;

use crate::epr::Epr;
use crate::fault::{QName, SoapFault};
use crate::ns;
use crate::values::{EnumItem, EnumPage, IdentifyInfo, Instance, InvokeOutput, PropValue};
use crate::writer::{escape_attr_into, escape_into};
use crate::xml::{self, Element, Limits};

/// Why a response could not be turned into the value asked for. A client wraps these in its
/// own error type (with its transport failures); the texts are the ones its reports show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// HTTP 401. The values of every `WWW-Authenticate` header, so a report can say which
    /// schemes the server offers.
    #[error("HTTP 401 unauthorized (WWW-Authenticate: {})", www_authenticate.join(", "))]
    Unauthorized {
        /// The `WWW-Authenticate` header values.
        www_authenticate: Vec<String>,
    },

    /// A SOAP fault (usually HTTP 500, sometimes 400 or even 200). Boxed to keep `Result`s small.
    #[error("WS-Management fault: {0}")]
    Fault(Box<SoapFault>),

    /// A non-success HTTP status without a SOAP fault in the body.
    #[error("unexpected HTTP status {status}: {body_excerpt}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body_excerpt: String,
    },

    /// The body is not well-formed XML (or not text at all).
    #[error("malformed XML in response: {reason}; body starts with: {body_excerpt}")]
    MalformedXml {
        /// The XML parser's complaint.
        reason: String,
        /// The start of the body.
        body_excerpt: String,
    },

    /// Well-formed XML that is not the expected WS-Management message.
    #[error("unexpected response: {0}")]
    Protocol(String),

    /// `a:RelatesTo` does not echo our MessageID (pypsrp treats this as fatal too).
    #[error("RelatesTo mismatch: sent MessageID {expected}, response relates to {}", got.as_deref().unwrap_or("nothing"))]
    RelatesToMismatch {
        /// The MessageID the request carried.
        expected: String,
        /// The RelatesTo the response carried, if any.
        got: Option<String>,
    },
}

impl ResponseError {
    /// The fault, if this is one.
    pub fn fault(&self) -> Option<&SoapFault> {
        match self {
            ResponseError::Fault(f) => Some(f),
            _ => None,
        }
    }
}

/// The result of every parser here.
pub type Result<T, E = ResponseError> = std::result::Result<T, E>;

/// The limits a response is parsed with. A request is small (the server's default
/// [`Limits`]), but an answer is as big as the server makes it: the client asks for
/// `w:MaxEnvelopeSize` 512000 octets and Enumerate pages of up to 32000 items, and a server
/// that ignores the size (or a recording of one) can send far more. 2,000,000 elements is a
/// body of about 32 MiB at WinRM's ~16 octets per element (a short property with its tags),
/// tens of MiB being what a whole host's instances come to; the tree stays in the low
/// hundreds of MiB at the very worst. Depth 128 is twice the server's 64: WinRM's deepest
/// answer (an association's EPR with nested references inside an enumeration item, or a
/// fault's provider detail) is about 15 levels, so real answers never come near either
/// bound, while a hostile body stops there instead of at the end of memory.
pub const RESPONSE_LIMITS: Limits = Limits {
    max_depth: 128,
    max_elements: 2_000_000,
};

/// First `max` characters of a body, for error messages.
fn excerpt(body: &str, max: usize) -> String {
    let mut out: String = body.chars().take(max).collect();
    if body.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

const EXCERPT: usize = 400;

fn parse_doc(body: &str) -> Result<Element<'_>> {
    if body.trim().is_empty() {
        return Err(ResponseError::MalformedXml {
            reason: "empty body".into(),
            body_excerpt: String::new(),
        });
    }
    xml::parse_with(body.as_bytes(), RESPONSE_LIMITS).map_err(|e| ResponseError::MalformedXml {
        reason: e.to_string(),
        body_excerpt: excerpt(body, EXCERPT),
    })
}

/// `{ns}local` of an element, `{}local` when it has no namespace (error messages).
fn clark(el: &Element<'_>) -> String {
    format!("{{{}}}{}", el.ns.as_deref().unwrap_or(""), el.local)
}

/// `(s:Header, s:Body)` of a SOAP 1.2 envelope.
fn envelope_parts<'d, 'a>(
    env: &'d Element<'a>,
) -> Result<(Option<&'d Element<'a>>, &'d Element<'a>)> {
    if !env.is(ns::SOAP, "Envelope") {
        return Err(ResponseError::Protocol(format!(
            "root element is {}, not a SOAP 1.2 Envelope",
            clark(env)
        )));
    }
    let body = env
        .child(ns::SOAP, "Body")
        .ok_or_else(|| ResponseError::Protocol("envelope has no s:Body".into()))?;
    Ok((env.child(ns::SOAP, "Header"), body))
}

/// All text at and below `el`: its own text, then its children's, depth first. A response's
/// values are leaves, where this is exactly the element's text; for the few containers read
/// as text (a fault message wrapping a provider fault, an Identify field with children) the
/// pieces are the same as in document order, and only text mixed between child elements
/// (which WinRM does not write) would come out in another order.
fn deep_text(el: &Element<'_>) -> String {
    let mut out = String::new();
    push_deep_text(el, &mut out);
    out
}

fn push_deep_text(el: &Element<'_>, out: &mut String) {
    out.push_str(&el.text);
    for c in &el.children {
        push_deep_text(c, out);
    }
}

/// `xsi:nil="true"` (or `1`, as XML Schema booleans allow).
fn is_nil(el: &Element<'_>) -> bool {
    matches!(
        el.attr_ns(ns::XSI, "nil").map(str::trim),
        Some("true") | Some("1")
    )
}

fn header_text(header: Option<&Element<'_>>, nsu: &str, local: &str) -> Option<String> {
    header
        .and_then(|h| h.child(nsu, local))
        .map(|n| deep_text(n).trim().to_string())
}

/// Turns an HTTP answer into the `s:Body` of a successful response and hands it to `f`.
///
/// Order matters: 401 first (WinRM's 401 has no SOAP body); then a fault wherever it appears,
/// whatever the status (libvirt accepts faults under 200/400/500); then other bad statuses;
/// then the RelatesTo check, which only makes sense for a real answer.
pub fn decode<T>(
    status: u16,
    www_authenticate: &[String],
    body: &str,
    expected_message_id: Option<&str>,
    f: impl FnOnce(&Element<'_>) -> Result<T>,
) -> Result<T> {
    if status == 401 {
        return Err(ResponseError::Unauthorized {
            www_authenticate: www_authenticate.to_vec(),
        });
    }
    let success = (200..300).contains(&status);
    let doc = match parse_doc(body) {
        Ok(doc) => doc,
        Err(e) if success => return Err(e),
        Err(_) => {
            return Err(ResponseError::Http {
                status,
                body_excerpt: excerpt(body, EXCERPT),
            });
        }
    };
    let parts = envelope_parts(&doc);
    let (header, soap_body) = match parts {
        Ok(p) => p,
        Err(e) if success => return Err(e),
        Err(_) => {
            return Err(ResponseError::Http {
                status,
                body_excerpt: excerpt(body, EXCERPT),
            });
        }
    };
    if let Some(fault) = soap_body.child(ns::SOAP, "Fault") {
        return Err(ResponseError::Fault(Box::new(fault_from_element(
            status, body, header, fault,
        ))));
    }
    if !success {
        return Err(ResponseError::Http {
            status,
            body_excerpt: excerpt(body, EXCERPT),
        });
    }
    if let Some(expected) = expected_message_id {
        let got = header_text(header, ns::ADDRESSING, "RelatesTo");
        if got.as_deref() != Some(expected) {
            return Err(ResponseError::RelatesToMismatch {
                expected: expected.to_string(),
                got,
            });
        }
    }
    f(soap_body)
}

/// The fault in `body`, if there is one (for recordings and reports that hold raw bodies).
pub fn fault(status: u16, body: &str) -> Option<SoapFault> {
    let doc = xml::parse_with(body.as_bytes(), RESPONSE_LIMITS).ok()?;
    let (header, soap_body) = envelope_parts(&doc).ok()?;
    soap_body
        .child(ns::SOAP, "Fault")
        .map(|f| fault_from_element(status, body, header, f))
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The fault's code and subcode: QNames written as text (`s:Sender`, `w:InvalidSelectors`),
/// resolved against the declarations in scope where they are written, which the element tree
/// does not keep ([`xml::text_qnames`]). A prefix that is not declared keeps an empty
/// namespace rather than failing: a fault is still worth reporting if its subcode is odd.
fn fault_codes(body: &str) -> (Option<QName>, Option<QName>) {
    const ENVELOPE: [&str; 3] = ["Envelope", "Body", "Fault"];
    let is_code = |path: &[(Option<&str>, &str)], code: &[&str]| {
        path.len() == ENVELOPE.len() + code.len()
            && ENVELOPE
                .iter()
                .chain(code)
                .zip(path)
                .all(|(want, (ns, local))| *ns == Some(ns::SOAP) && local == want)
    };
    const CODE: [&str; 2] = ["Code", "Value"];
    const SUBCODE: [&str; 3] = ["Code", "Subcode", "Value"];
    let found = xml::text_qnames(body.as_bytes(), RESPONSE_LIMITS, |path| {
        is_code(path, &CODE) || is_code(path, &SUBCODE)
    })
    .unwrap_or_default();
    let first = |code: &[&str]| {
        found
            .iter()
            .find(|q| {
                let path: Vec<(Option<&str>, &str)> = q
                    .path
                    .iter()
                    .map(|(ns, local)| (ns.as_deref(), local.as_str()))
                    .collect();
                is_code(&path, code)
            })
            .map(|q| QName {
                namespace: q.ns.clone().unwrap_or_default(),
                local: q.local.clone(),
            })
    };
    (first(&CODE), first(&SUBCODE))
}

fn fault_from_element(
    status: u16,
    body: &str,
    header: Option<&Element<'_>>,
    fault: &Element<'_>,
) -> SoapFault {
    let (code, subcode) = fault_codes(body);
    let code_el = fault.child(ns::SOAP, "Code");
    let code = code_el
        .and_then(|c| c.child(ns::SOAP, "Value"))
        .and(code)
        .unwrap_or(QName {
            namespace: String::new(),
            local: String::new(),
        });
    let subcode = code_el
        .and_then(|c| c.child(ns::SOAP, "Subcode"))
        .and_then(|s| s.child(ns::SOAP, "Value"))
        .and(subcode);
    let reason = fault
        .child(ns::SOAP, "Reason")
        .and_then(|r| r.child(ns::SOAP, "Text"))
        .map(deep_text)
        .unwrap_or_default();
    let detail = fault.child(ns::SOAP, "Detail");
    let fault_detail = detail
        .and_then(|d| find_descendant(d, ns::WSMAN, "FaultDetail"))
        .map(|n| deep_text(n).trim().to_string());
    // The outermost WSManFault carries WinRM's own code; nested ones (inside ProviderFault)
    // belong to the provider and are kept only as message text.
    let wsman_fault = detail.and_then(|d| find_descendant(d, ns::WSMAN_FAULT, "WSManFault"));
    let wsman_code = wsman_fault
        .and_then(|w| w.attr("Code"))
        .and_then(parse_code);
    let message = wsman_fault
        .and_then(|w| w.child(ns::WSMAN_FAULT, "Message"))
        .map(|m| collapse_ws(&deep_text(m)))
        .filter(|m| !m.is_empty());
    SoapFault {
        http_status: status,
        code,
        subcode,
        reason,
        wsman_code,
        fault_detail,
        message,
        action: header_text(header, ns::ADDRESSING, "Action"),
    }
}

/// The first element named `{nsu}local` at or below `el`, in document order (depth first,
/// as roxmltree's `descendants` went).
fn find_descendant<'d, 'a>(el: &'d Element<'a>, nsu: &str, local: &str) -> Option<&'d Element<'a>> {
    if el.is(nsu, local) {
        return Some(el);
    }
    el.children
        .iter()
        .find_map(|c| find_descendant(c, nsu, local))
}

/// WinRM writes decimal codes; accept `0x…` too rather than dropping the code.
fn parse_code(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An element written back as standalone XML, for [`PropValue::Xml`]: each element declares
/// its namespace as the default one where it changes (the tree keeps URIs, not the prefixes
/// the server chose), a namespaced attribute gets a prefix of its own, and an element's text
/// comes before its children (the tree keeps an element's text as one piece).
fn write_xml(out: &mut String, el: &Element<'_>, parent_ns: Option<&str>) {
    out.push('<');
    out.push_str(&el.local);
    let own_ns = el.ns.as_deref();
    if own_ns != parent_ns {
        out.push_str(" xmlns=\"");
        escape_attr_into(out, own_ns.unwrap_or(""));
        out.push('"');
    }
    for (i, a) in el.attrs.iter().enumerate() {
        out.push(' ');
        match a.ns.as_deref() {
            None => {}
            // Bound in every document; it may not be declared again under another prefix.
            Some(ns::XML) => out.push_str("xml:"),
            Some(uri) => {
                out.push_str(&format!("xmlns:a{i}=\""));
                escape_attr_into(out, uri);
                out.push_str(&format!("\" a{i}:"));
            }
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr_into(out, &a.value);
        out.push('"');
    }
    if el.children.is_empty() && el.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_into(out, &el.text);
    for c in &el.children {
        write_xml(out, c, own_ns);
    }
    out.push_str("</");
    out.push_str(&el.local);
    out.push('>');
}

fn value_from_element(el: &Element<'_>) -> PropValue {
    if is_nil(el) {
        return PropValue::Null;
    }
    if el.children.is_empty() {
        return PropValue::Text(el.text.to_string());
    }
    if let Some(epr) = Epr::from_response_element(el) {
        return PropValue::Ref(epr);
    }
    if let [only] = el.children.as_slice()
        && only.ns.as_deref() == Some(ns::CIM_COMMON)
    {
        match &*only.local {
            "Datetime" | "Date" | "Time" => {
                return PropValue::Datetime(deep_text(only).trim().to_string());
            }
            "Interval" => return PropValue::Interval(deep_text(only).trim().to_string()),
            _ => {}
        }
    }
    let mut out = String::new();
    write_xml(&mut out, el, None);
    PropValue::Xml(out)
}

/// Properties of `el`: one entry per local name; repeated siblings become an `Array`.
fn props_of(el: &Element<'_>) -> BTreeMap<String, PropValue> {
    let mut props: BTreeMap<String, PropValue> = BTreeMap::new();
    for c in &el.children {
        let name = c.local.to_string();
        let value = value_from_element(c);
        match props.remove(&name) {
            None => {
                props.insert(name, value);
            }
            Some(PropValue::Array(mut v)) => {
                v.push(value);
                props.insert(name, PropValue::Array(v));
            }
            Some(first) => {
                props.insert(name, PropValue::Array(vec![first, value]));
            }
        }
    }
    props
}

/// An instance element (`<p:Msvm_ConcreteJob xmlns:p="…/Msvm_ConcreteJob">…`).
pub fn instance_from_element(el: &Element<'_>) -> Instance {
    Instance {
        class: el.local.to_string(),
        namespace: el.ns.as_deref().unwrap_or_default().to_string(),
        props: props_of(el),
    }
}

/// Body of a GetResponse: its first element is the instance.
pub fn get_response(body: &Element<'_>) -> Result<Instance> {
    body.children
        .first()
        .map(instance_from_element)
        .ok_or_else(|| ResponseError::Protocol("GetResponse body is empty".into()))
}

fn item_from_element(el: &Element<'_>) -> EnumItem {
    if el.is(ns::ADDRESSING, "EndpointReference")
        && let Some(epr) = Epr::from_response_element(el)
    {
        return EnumItem::Epr(epr);
    }
    if el.is(ns::WSMAN, "Item") {
        let epr = el
            .child(ns::ADDRESSING, "EndpointReference")
            .and_then(Epr::from_response_element);
        let inst = el
            .children
            .iter()
            .find(|n| !n.is(ns::ADDRESSING, "EndpointReference"))
            .map(instance_from_element);
        return match (inst, epr) {
            (Some(i), Some(e)) => EnumItem::InstanceAndEpr(i, e),
            (None, Some(e)) => EnumItem::Epr(e),
            (Some(i), None) => EnumItem::Instance(i),
            (None, None) => EnumItem::Instance(instance_from_element(el)),
        };
    }
    EnumItem::Instance(instance_from_element(el))
}

/// Body of an EnumerateResponse (items in `w:Items` when optimised) or a PullResponse (items
/// in `n:Items`). Both Items namespaces and both EndOfSequence namespaces are accepted in both
/// responses: sources disagree on which one WinRM uses where (docs/facts.md#enumeration).
pub fn enum_page(body: &Element<'_>) -> Result<EnumPage> {
    let resp = body
        .child(ns::ENUMERATION, "EnumerateResponse")
        .or_else(|| body.child(ns::ENUMERATION, "PullResponse"))
        .ok_or_else(|| {
            ResponseError::Protocol(format!(
                "expected n:EnumerateResponse or n:PullResponse, got {}",
                describe_children(body)
            ))
        })?;
    let context = resp
        .child(ns::ENUMERATION, "EnumerationContext")
        .map(|c| deep_text(c).trim().to_string())
        .filter(|c| !c.is_empty());
    let mut items = Vec::new();
    for holder in resp
        .children
        .iter()
        .filter(|n| n.is(ns::WSMAN, "Items") || n.is(ns::ENUMERATION, "Items"))
    {
        items.extend(holder.children.iter().map(item_from_element));
    }
    let end_of_sequence = resp
        .children
        .iter()
        .any(|n| n.is(ns::ENUMERATION, "EndOfSequence") || n.is(ns::WSMAN, "EndOfSequence"));
    Ok(EnumPage {
        items,
        context,
        end_of_sequence,
    })
}

/// Body of a method response: `{method}_OUTPUT` with `ReturnValue` and out-parameters.
pub fn invoke_output(body: &Element<'_>, method: &str) -> Result<InvokeOutput> {
    let wanted = format!("{method}_OUTPUT");
    let out_el = body
        .children
        .iter()
        .find(|n| n.local == wanted)
        .ok_or_else(|| {
            ResponseError::Protocol(format!(
                "expected {wanted}, got {}",
                describe_children(body)
            ))
        })?;
    let mut out = props_of(out_el);
    let return_value = match out.remove("ReturnValue") {
        Some(v) => v.as_u32().ok_or_else(|| {
            ResponseError::Protocol(format!("{wanted}: ReturnValue is not a number: {v:?}"))
        })?,
        None => {
            return Err(ResponseError::Protocol(format!(
                "{wanted} has no ReturnValue"
            )));
        }
    };
    let job = out.get("Job").and_then(PropValue::as_epr).cloned();
    Ok(InvokeOutput {
        return_value,
        job,
        out,
    })
}

/// Body of an IdentifyResponse.
pub fn identify_response(body: &Element<'_>) -> Result<IdentifyInfo> {
    let resp = body
        .child(ns::IDENTIFY, "IdentifyResponse")
        .ok_or_else(|| {
            ResponseError::Protocol(format!(
                "expected wsmid:IdentifyResponse, got {}",
                describe_children(body)
            ))
        })?;
    let fields: BTreeMap<String, String> = resp
        .children
        .iter()
        .map(|n| (n.local.to_string(), collapse_ws(&deep_text(n))))
        .collect();
    Ok(IdentifyInfo {
        protocol_version: fields.get("ProtocolVersion").cloned(),
        product_vendor: fields.get("ProductVendor").cloned(),
        product_version: fields.get("ProductVersion").cloned(),
        fields,
    })
}

fn describe_children(el: &Element<'_>) -> String {
    let names: Vec<String> = el.children.iter().map(clark).collect();
    if names.is_empty() {
        "an empty body".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
