//! Response parsing, the client side of the protocol (the server side writes responses with
//! [`crate::writer`]): roxmltree, by namespace URI and local name only.
//!
//! Everything here works on server-supplied text, so nothing may panic: missing pieces become
//! [`ResponseError::Protocol`] (or a default where WinRM is known to omit a part).

use std::collections::BTreeMap;

use roxmltree::{Document, Node};

use crate::dom::{child, elements, is, is_nil, resolve_qname, text_of};
use crate::fault::{QName, SoapFault};
use crate::ns;
use crate::values::{
    EnumItem, EnumPage, Epr, IdentifyInfo, Instance, InvokeOutput, PropValue, SelectorSet,
};

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

/// First `max` characters of a body, for error messages.
fn excerpt(body: &str, max: usize) -> String {
    let mut out: String = body.chars().take(max).collect();
    if body.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

const EXCERPT: usize = 400;

fn parse_doc(body: &str) -> Result<Document<'_>> {
    if body.trim().is_empty() {
        return Err(ResponseError::MalformedXml {
            reason: "empty body".into(),
            body_excerpt: String::new(),
        });
    }
    Document::parse(body).map_err(|e| ResponseError::MalformedXml {
        reason: e.to_string(),
        body_excerpt: excerpt(body, EXCERPT),
    })
}

/// `(s:Header, s:Body)` of a SOAP 1.2 envelope.
fn envelope_parts<'a, 'i>(doc: &'a Document<'i>) -> Result<(Option<Node<'a, 'i>>, Node<'a, 'i>)> {
    let env = doc.root_element();
    if !is(env, ns::SOAP, "Envelope") {
        return Err(ResponseError::Protocol(format!(
            "root element is {{{}}}{}, not a SOAP 1.2 Envelope",
            env.tag_name().namespace().unwrap_or(""),
            env.tag_name().name()
        )));
    }
    let body = child(env, ns::SOAP, "Body")
        .ok_or_else(|| ResponseError::Protocol("envelope has no s:Body".into()))?;
    Ok((child(env, ns::SOAP, "Header"), body))
}

fn header_text(header: Option<Node<'_, '_>>, nsu: &str, local: &str) -> Option<String> {
    header
        .and_then(|h| child(h, nsu, local))
        .map(|n| text_of(n).trim().to_string())
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
    f: impl FnOnce(Node<'_, '_>) -> Result<T>,
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
    if let Some(fault) = child(soap_body, ns::SOAP, "Fault") {
        return Err(ResponseError::Fault(Box::new(fault_from_node(
            status, header, fault,
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
    let doc = Document::parse(body).ok()?;
    let (header, soap_body) = envelope_parts(&doc).ok()?;
    child(soap_body, ns::SOAP, "Fault").map(|f| fault_from_node(status, header, f))
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fault_from_node(status: u16, header: Option<Node<'_, '_>>, fault: Node<'_, '_>) -> SoapFault {
    let qname = |value: Node<'_, '_>| {
        let (namespace, local) = resolve_qname(value, &text_of(value));
        QName { namespace, local }
    };
    let code_el = child(fault, ns::SOAP, "Code");
    let code = code_el
        .and_then(|c| child(c, ns::SOAP, "Value"))
        .map(qname)
        .unwrap_or(QName {
            namespace: String::new(),
            local: String::new(),
        });
    let subcode = code_el
        .and_then(|c| child(c, ns::SOAP, "Subcode"))
        .and_then(|s| child(s, ns::SOAP, "Value"))
        .map(qname);
    let reason = child(fault, ns::SOAP, "Reason")
        .and_then(|r| child(r, ns::SOAP, "Text"))
        .map(text_of)
        .unwrap_or_default();
    let detail = child(fault, ns::SOAP, "Detail");
    let fault_detail = detail
        .and_then(|d| d.descendants().find(|n| is(*n, ns::WSMAN, "FaultDetail")))
        .map(|n| text_of(n).trim().to_string());
    // The outermost WSManFault carries WinRM's own code; nested ones (inside ProviderFault)
    // belong to the provider and are kept only as message text.
    let wsman_fault = detail.and_then(|d| {
        d.descendants()
            .find(|n| is(*n, ns::WSMAN_FAULT, "WSManFault"))
    });
    let wsman_code = wsman_fault
        .and_then(|w| w.attribute("Code"))
        .and_then(parse_code);
    let message = wsman_fault
        .and_then(|w| child(w, ns::WSMAN_FAULT, "Message"))
        .map(|m| collapse_ws(&text_of(m)))
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

/// WinRM writes decimal codes; accept `0x…` too rather than dropping the code.
fn parse_code(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An EPR from an element that either is `a:EndpointReference`, wraps one, or directly holds
/// `a:Address` / `a:ReferenceParameters` (the WinRM form for properties and parameters).
pub fn epr_from_node(node: Node<'_, '_>) -> Option<Epr> {
    let holder = if is(node, ns::ADDRESSING, "EndpointReference") {
        node
    } else if let Some(inner) = child(node, ns::ADDRESSING, "EndpointReference") {
        inner
    } else {
        node
    };
    let address = child(holder, ns::ADDRESSING, "Address");
    let refp = child(holder, ns::ADDRESSING, "ReferenceParameters");
    if address.is_none() && refp.is_none() {
        return None;
    }
    let resource_uri = refp
        .and_then(|r| child(r, ns::WSMAN, "ResourceURI"))
        .map(|n| text_of(n).trim().to_string())
        .unwrap_or_default();
    let mut selectors = SelectorSet::new();
    if let Some(set) = refp.and_then(|r| child(r, ns::WSMAN, "SelectorSet")) {
        for sel in elements(set).filter(|s| is(*s, ns::WSMAN, "Selector")) {
            selectors.push(sel.attribute("Name").unwrap_or_default(), text_of(sel));
        }
    }
    Some(Epr {
        address: address
            .map(|a| text_of(a).trim().to_string())
            .unwrap_or_default(),
        resource_uri,
        selectors,
        refs: Vec::new(),
    })
}

fn value_from_node(node: Node<'_, '_>) -> PropValue {
    if is_nil(node) {
        return PropValue::Null;
    }
    if elements(node).next().is_none() {
        return PropValue::Text(text_of(node));
    }
    if let Some(epr) = epr_from_node(node) {
        return PropValue::Ref(epr);
    }
    let kids: Vec<Node<'_, '_>> = elements(node).collect();
    if let [only] = kids.as_slice()
        && only.tag_name().namespace() == Some(ns::CIM_COMMON)
    {
        match only.tag_name().name() {
            "Datetime" | "Date" | "Time" => {
                return PropValue::Datetime(text_of(*only).trim().to_string());
            }
            "Interval" => return PropValue::Interval(text_of(*only).trim().to_string()),
            _ => {}
        }
    }
    let src = node.document().input_text();
    PropValue::Xml(src.get(node.range()).unwrap_or_default().to_string())
}

/// Properties of `node`: one entry per local name; repeated siblings become an `Array`.
fn props_of(node: Node<'_, '_>) -> BTreeMap<String, PropValue> {
    let mut props: BTreeMap<String, PropValue> = BTreeMap::new();
    for el in elements(node) {
        let name = el.tag_name().name().to_string();
        let value = value_from_node(el);
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
pub fn instance_from_node(node: Node<'_, '_>) -> Instance {
    Instance {
        class: node.tag_name().name().to_string(),
        namespace: node.tag_name().namespace().unwrap_or_default().to_string(),
        props: props_of(node),
    }
}

/// Body of a GetResponse: its first element is the instance.
pub fn get_response(body: Node<'_, '_>) -> Result<Instance> {
    elements(body)
        .next()
        .map(instance_from_node)
        .ok_or_else(|| ResponseError::Protocol("GetResponse body is empty".into()))
}

fn item_from_node(node: Node<'_, '_>) -> EnumItem {
    if is(node, ns::ADDRESSING, "EndpointReference")
        && let Some(epr) = epr_from_node(node)
    {
        return EnumItem::Epr(epr);
    }
    if is(node, ns::WSMAN, "Item") {
        let epr = child(node, ns::ADDRESSING, "EndpointReference").and_then(epr_from_node);
        let inst = elements(node)
            .find(|n| !is(*n, ns::ADDRESSING, "EndpointReference"))
            .map(instance_from_node);
        return match (inst, epr) {
            (Some(i), Some(e)) => EnumItem::InstanceAndEpr(i, e),
            (None, Some(e)) => EnumItem::Epr(e),
            (Some(i), None) => EnumItem::Instance(i),
            (None, None) => EnumItem::Instance(instance_from_node(node)),
        };
    }
    EnumItem::Instance(instance_from_node(node))
}

/// Body of an EnumerateResponse (items in `w:Items` when optimised) or a PullResponse (items
/// in `n:Items`). Both Items namespaces and both EndOfSequence namespaces are accepted in both
/// responses: sources disagree on which one WinRM uses where (docs/facts.md#enumeration).
pub fn enum_page(body: Node<'_, '_>) -> Result<EnumPage> {
    let resp = child(body, ns::ENUMERATION, "EnumerateResponse")
        .or_else(|| child(body, ns::ENUMERATION, "PullResponse"))
        .ok_or_else(|| {
            ResponseError::Protocol(format!(
                "expected n:EnumerateResponse or n:PullResponse, got {}",
                describe_children(body)
            ))
        })?;
    let context = child(resp, ns::ENUMERATION, "EnumerationContext")
        .map(|c| text_of(c).trim().to_string())
        .filter(|c| !c.is_empty());
    let mut items = Vec::new();
    for holder in
        elements(resp).filter(|n| is(*n, ns::WSMAN, "Items") || is(*n, ns::ENUMERATION, "Items"))
    {
        items.extend(elements(holder).map(item_from_node));
    }
    let end_of_sequence = elements(resp)
        .any(|n| is(n, ns::ENUMERATION, "EndOfSequence") || is(n, ns::WSMAN, "EndOfSequence"));
    Ok(EnumPage {
        items,
        context,
        end_of_sequence,
    })
}

/// Body of a method response: `{method}_OUTPUT` with `ReturnValue` and out-parameters.
pub fn invoke_output(body: Node<'_, '_>, method: &str) -> Result<InvokeOutput> {
    let wanted = format!("{method}_OUTPUT");
    let out_el = elements(body)
        .find(|n| n.tag_name().name() == wanted)
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
pub fn identify_response(body: Node<'_, '_>) -> Result<IdentifyInfo> {
    let resp = child(body, ns::IDENTIFY, "IdentifyResponse").ok_or_else(|| {
        ResponseError::Protocol(format!(
            "expected wsmid:IdentifyResponse, got {}",
            describe_children(body)
        ))
    })?;
    let fields: BTreeMap<String, String> = elements(resp)
        .map(|n| (n.tag_name().name().to_string(), collapse_ws(&text_of(n))))
        .collect();
    Ok(IdentifyInfo {
        protocol_version: fields.get("ProtocolVersion").cloned(),
        product_vendor: fields.get("ProductVendor").cloned(),
        product_version: fields.get("ProductVersion").cloned(),
        fields,
    })
}

fn describe_children(node: Node<'_, '_>) -> String {
    let names: Vec<String> = elements(node)
        .map(|n| {
            format!(
                "{{{}}}{}",
                n.tag_name().namespace().unwrap_or(""),
                n.tag_name().name()
            )
        })
        .collect();
    if names.is_empty() {
        "an empty body".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
