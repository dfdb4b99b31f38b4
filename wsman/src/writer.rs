//! Response envelopes, written by hand with WinRM's fixed prefixes.
//!
//! Hand-written string building rather than `quick_xml::Writer`: the shapes are fixed, the prefixes
//! must be exactly WinRM's (libvirt evaluates XPath with hard-coded `s:`, `p:`, `a:`, `w:`;
//! docs/facts.md#response-prefixes), and one growing `String` per response is the cheapest thing on
//! the hot path. Every piece of caller text goes through [`escape_into`] or [`escape_attr_into`].

use super::epr::Epr;
use super::ns;
use std::borrow::Cow;

/// Per-response header data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader<'a> {
    /// Uppercase GUID for `a:MessageID`, without the `uuid:` prefix. Caller-supplied so
    /// that a seeded simulator is repeatable.
    pub message_guid: &'a str,
    /// The request's MessageID, echoed verbatim in `a:RelatesTo` (pypsrp refuses a
    /// response whose RelatesTo differs). `None` omits the element.
    pub relates_to: Option<&'a str>,
    /// Envelope `xml:lang`; WinRM follows the request's Locale. Defaults to `en-US`.
    pub lang: Option<&'a str>,
}

impl ReplyHeader<'_> {
    /// The envelope's `xml:lang`.
    pub fn lang(&self) -> &str {
        self.lang.unwrap_or("en-US")
    }
}

/// A property value of an instance or an output parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Written as `xsi:nil="true"`: real hosts keep NULL properties present (docs/facts.md#values).
    Null,
    /// A string, escaped. Borrowed for the schema's fixed values, so an instance with dozens
    /// of declared constants does not allocate each one per request.
    Text(Cow<'static, str>),
    /// An integer of any CIM width.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// Milliseconds since the UNIX epoch, UTC; written as `cim:Datetime`.
    Datetime(i64),
    /// Milliseconds; written as `cim:Interval`.
    Interval(u64),
    /// A reference, written as `a:Address` + `a:ReferenceParameters`. Boxed: an `Epr` is four
    /// times the size of every other value, and instances are vectors of dozens of values that
    /// are nearly never references.
    Ref(Box<Epr>),
    /// Repeated elements, one per value; an empty array is one nil element.
    Array(Vec<Value>),
}

/// One WMI instance: `class` is also the element name, `resource_uri` its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The class name.
    pub class: Cow<'static, str>,
    /// The class resource URI.
    pub resource_uri: Cow<'static, str>,
    /// Written in this order. Names are the schema's `&'static str` (one allocation fewer per
    /// property per request) or, for instances read from a request, owned.
    pub props: Vec<(Cow<'static, str>, Value)>,
}

/// One item of an enumeration page: the object itself, or only its reference
/// (`w:EnumerationMode` EnumerateEPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// The object.
    Instance(&'a Instance),
    /// Its reference only.
    Epr(&'a Epr),
    /// `EnumerateObjectAndEPR`: `w:Item` wrapping the object, then its reference.
    ObjectAndEpr(&'a Instance, &'a Epr),
}

/// Namespace declarations of every WinRM response envelope, in WinRM's order
/// (pypsrp captures, docs/facts.md#faults). `p:` is the MS wsman namespace here; instances
/// rebind it to their class URI.
const ENVELOPE_NS: &str = concat!(
    " xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"",
    " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
    " xmlns:x=\"http://schemas.xmlsoap.org/ws/2004/09/transfer\"",
    " xmlns:e=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\"",
    " xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"",
    " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"",
    " xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\"",
);

/// Where the end-of-sequence marker of an optimized EnumerateResponse lives. DSP0226 and
/// Microsoft's OMI write `wsman:EndOfSequence`; the runner-mei sample has `n:EndOfSequence`
/// (docs/facts.md#enumeration). INFERRED: `w:`, to be settled by the conformance runner.
const OPTIMIZED_END_OF_SEQUENCE: &str = "<w:EndOfSequence/>";

/// Writes `<s:Envelope …><s:Header>…</s:Header><s:Body>`. `extra_headers` appends header
/// blocks after the four standard ones.
pub(crate) fn open_envelope(
    out: &mut String,
    h: &ReplyHeader<'_>,
    action: &str,
    extra_headers: impl FnOnce(&mut String),
) {
    out.push_str("<s:Envelope xml:lang=\"");
    escape_attr_into(out, h.lang());
    out.push('"');
    out.push_str(ENVELOPE_NS);
    out.push_str("><s:Header><a:Action>");
    escape_into(out, action);
    out.push_str("</a:Action><a:MessageID>uuid:");
    escape_into(out, h.message_guid);
    out.push_str("</a:MessageID><a:To>");
    out.push_str(ns::ANONYMOUS);
    out.push_str("</a:To>");
    if let Some(rel) = h.relates_to {
        out.push_str("<a:RelatesTo>");
        escape_into(out, rel);
        out.push_str("</a:RelatesTo>");
    }
    extra_headers(out);
    out.push_str("</s:Header><s:Body>");
}

pub(crate) fn close_envelope(out: &mut String) {
    out.push_str("</s:Body></s:Envelope>");
}

fn with_envelope(h: &ReplyHeader<'_>, action: &str, body: impl FnOnce(&mut String)) -> String {
    let mut out = String::with_capacity(4096);
    open_envelope(&mut out, h, action, |_| {});
    body(&mut out);
    close_envelope(&mut out);
    out
}

/// Any response envelope in WinRM's layout around `body` (already XML): for answers the
/// typed writers below do not cover, such as a test server's canned bodies.
pub fn response_envelope(h: &ReplyHeader<'_>, action: &str, body: &str) -> String {
    with_envelope(h, action, |out| out.push_str(body))
}

/// WS-Transfer GetResponse: the instance is the body.
pub fn get_response(h: &ReplyHeader<'_>, instance: &Instance) -> String {
    with_envelope(h, ns::action::GET_RESPONSE, |out| {
        write_instance(out, instance)
    })
}

/// [`get_response`] of an instance whose properties `props` writes with [`write_property`]
/// or copies: for a server whose instances share most of their values, which it keeps
/// written once instead of building them into every [`Instance`] it answers with.
pub fn get_response_with(
    h: &ReplyHeader<'_>,
    class: &str,
    resource_uri: &str,
    props: impl FnOnce(&mut String),
) -> String {
    with_envelope(h, ns::action::GET_RESPONSE, |out| {
        write_instance_with(out, class, resource_uri, props)
    })
}

/// EnumerateResponse for a request with `w:OptimizeEnumeration`: the first page travels in
/// `w:Items`. Pass `context: None` to omit the context element.
pub fn enumerate_response_optimized(
    h: &ReplyHeader<'_>,
    items: &[Item<'_>],
    context: Option<&str>,
    end_of_sequence: bool,
) -> String {
    with_envelope(h, ns::action::ENUMERATE_RESPONSE, |out| {
        out.push_str("<n:EnumerateResponse>");
        write_context(out, context);
        out.push_str("<w:Items>");
        write_items(out, items);
        out.push_str("</w:Items>");
        if end_of_sequence {
            out.push_str(OPTIMIZED_END_OF_SEQUENCE);
        }
        out.push_str("</n:EnumerateResponse>");
    })
}

/// EnumerateResponse without items: the client Pulls with this context.
pub fn enumerate_response(h: &ReplyHeader<'_>, context: &str) -> String {
    with_envelope(h, ns::action::ENUMERATE_RESPONSE, |out| {
        out.push_str("<n:EnumerateResponse>");
        write_context(out, Some(context));
        out.push_str("</n:EnumerateResponse>");
    })
}

/// PullResponse with items in `n:Items` (libvirt looks there). On the last page pass
/// `context: None`: WinRb/WinRM loops until the context is absent (docs/facts.md#enumeration).
pub fn pull_response(
    h: &ReplyHeader<'_>,
    items: &[Item<'_>],
    context: Option<&str>,
    end_of_sequence: bool,
) -> String {
    with_envelope(h, ns::action::PULL_RESPONSE, |out| {
        out.push_str("<n:PullResponse>");
        write_context(out, context);
        out.push_str("<n:Items>");
        write_items(out, items);
        out.push_str("</n:Items>");
        if end_of_sequence {
            out.push_str("<n:EndOfSequence/>");
        }
        out.push_str("</n:PullResponse>");
    })
}

/// ReleaseResponse: empty body.
pub fn release_response(h: &ReplyHeader<'_>) -> String {
    with_envelope(h, ns::action::RELEASE_RESPONSE, |_| {})
}

/// Method output: `<p:{Method}_OUTPUT xmlns:p="{ResourceURI}">`, the out parameters in the
/// given order, then `p:ReturnValue` (libvirt reads both by XPath, so order is free).
/// Action `{ResourceURI}/{Method}Response`, as in r4sd/go-wsman's fixtures.
pub fn invoke_response(
    h: &ReplyHeader<'_>,
    resource_uri: &str,
    method: &str,
    out_params: &[(&str, Value)],
    return_value: u32,
) -> String {
    // Joined by hand: `format!` was a tenth of writing this answer.
    let mut action = String::with_capacity(resource_uri.len() + method.len() + 9);
    action.push_str(resource_uri);
    action.push('/');
    action.push_str(method);
    action.push_str("Response");
    with_envelope(h, &action, |out| {
        out.push_str("<p:");
        out.push_str(method);
        out.push_str("_OUTPUT xmlns:p=\"");
        escape_attr_into(out, resource_uri);
        out.push_str("\" xmlns:xsi=\"");
        out.push_str(ns::XSI);
        out.push_str("\" xmlns:cim=\"");
        out.push_str(ns::CIM_COMMON);
        out.push_str("\">");
        for (name, value) in out_params {
            write_property(out, name, value);
        }
        out.push_str("<p:ReturnValue>");
        out.push_str(itoa::Buffer::new().format(return_value));
        out.push_str("</p:ReturnValue></p:");
        out.push_str(method);
        out.push_str("_OUTPUT>");
    })
}

/// IdentifyResponse, as a real WinRM wrote it (none is listed in docs/facts.md#sources; a WinRM
/// 2012 R2 capture was found with the search tool): no addressing headers, an empty `s:Header`.
pub fn identify_response(
    product_vendor: &str,
    product_version: &str,
    protocol_version: &str,
) -> String {
    identify_response_with_profiles(product_vendor, product_version, protocol_version, &[])
}

/// IdentifyResponse with `wsmid:SecurityProfiles` (WinRM lists e.g.
/// `http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/basic`).
pub fn identify_response_with_profiles(
    product_vendor: &str,
    product_version: &str,
    protocol_version: &str,
    security_profiles: &[&str],
) -> String {
    let mut out = String::with_capacity(768);
    out.push_str("<s:Envelope xml:lang=\"en-US\" xmlns:s=\"");
    out.push_str(ns::SOAP);
    out.push_str("\"><s:Header/><s:Body><wsmid:IdentifyResponse xmlns:wsmid=\"");
    out.push_str(ns::IDENTIFY);
    out.push_str("\"><wsmid:ProtocolVersion>");
    escape_into(&mut out, protocol_version);
    out.push_str("</wsmid:ProtocolVersion><wsmid:ProductVendor>");
    escape_into(&mut out, product_vendor);
    out.push_str("</wsmid:ProductVendor><wsmid:ProductVersion>");
    escape_into(&mut out, product_version);
    out.push_str("</wsmid:ProductVersion>");
    if !security_profiles.is_empty() {
        out.push_str("<wsmid:SecurityProfiles>");
        for p in security_profiles {
            out.push_str("<wsmid:SecurityProfileName>");
            escape_into(&mut out, p);
            out.push_str("</wsmid:SecurityProfileName>");
        }
        out.push_str("</wsmid:SecurityProfiles>");
    }
    out.push_str("</wsmid:IdentifyResponse></s:Body></s:Envelope>");
    out
}

/// Whether a serialized response is larger than the request's MaxEnvelopeSize (in octets,
/// DSP0226). The caller then answers `w:EncodingLimit` instead.
pub fn exceeds_max_envelope_size(response: &str, max_envelope_size: Option<u64>) -> bool {
    max_envelope_size.is_some_and(|max| u64::try_from(response.len()).map_or(true, |len| len > max))
}

fn write_context(out: &mut String, context: Option<&str>) {
    if let Some(ctx) = context {
        out.push_str("<n:EnumerationContext>");
        escape_into(out, ctx);
        out.push_str("</n:EnumerationContext>");
    }
}

fn write_items(out: &mut String, items: &[Item<'_>]) {
    for item in items {
        match item {
            Item::Instance(inst) => write_instance(out, inst),
            Item::Epr(epr) => write_epr_item(out, epr),
            Item::ObjectAndEpr(inst, epr) => {
                out.push_str("<w:Item>");
                write_instance(out, inst);
                write_epr_item(out, epr);
                out.push_str("</w:Item>");
            }
        }
    }
}

fn write_epr_item(out: &mut String, epr: &Epr) {
    out.push_str("<a:EndpointReference>");
    epr.write_children(out);
    out.push_str("</a:EndpointReference>");
}

/// The serialized size of one item, to fill a page up to the client's MaxEnvelopeSize.
pub fn item_len(item: &Item<'_>) -> usize {
    let mut out = String::new();
    write_items(&mut out, std::slice::from_ref(item));
    out.len()
}

/// `<p:{Class} xmlns:p="{ResourceURI}" xmlns:xsi=… xmlns:cim=… xsi:type="p:{Class}_Type">`
/// then the properties (runner-mei's WinRM sample, docs/facts.md#get-and-job-polling). Class and
/// property names come from the model, not from requests, and must be XML names.
pub fn write_instance(out: &mut String, inst: &Instance) {
    write_instance_with(out, &inst.class, &inst.resource_uri, |out| {
        for (name, value) in &inst.props {
            write_property(out, name, value);
        }
    });
}

fn write_instance_with(
    out: &mut String,
    class: &str,
    resource_uri: &str,
    props: impl FnOnce(&mut String),
) {
    out.push_str("<p:");
    out.push_str(class);
    out.push_str(" xmlns:p=\"");
    escape_attr_into(out, resource_uri);
    out.push_str("\" xmlns:xsi=\"");
    out.push_str(ns::XSI);
    out.push_str("\" xmlns:cim=\"");
    out.push_str(ns::CIM_COMMON);
    out.push_str("\" xsi:type=\"p:");
    out.push_str(class);
    out.push_str("_Type\">");
    props(out);
    out.push_str("</p:");
    out.push_str(class);
    out.push('>');
}

/// One property of an instance as [`write_instance`] writes it: one element `p:{name}` (or
/// several, for an array). Public for [`get_response_with`].
pub fn write_property(out: &mut String, name: &str, value: &Value) {
    let open = |out: &mut String| {
        out.push_str("<p:");
        out.push_str(name);
    };
    let close = |out: &mut String| {
        out.push_str("</p:");
        out.push_str(name);
        out.push('>');
    };
    match value {
        Value::Null => {
            open(out);
            out.push_str(" xsi:nil=\"true\"/>");
        }
        Value::Text(s) => {
            open(out);
            out.push('>');
            escape_into(out, s);
            close(out);
        }
        Value::Int(i) => {
            open(out);
            out.push('>');
            // itoa: a formatting machine per integer was a tenth of writing an instance.
            out.push_str(itoa::Buffer::new().format(*i));
            close(out);
        }
        Value::Bool(b) => {
            open(out);
            out.push_str(if *b { ">true" } else { ">false" });
            close(out);
        }
        Value::Datetime(ms) => {
            open(out);
            out.push_str("><cim:Datetime>");
            super::xsd::write_datetime_ms(out, *ms);
            out.push_str("</cim:Datetime>");
            close(out);
        }
        Value::Interval(ms) => {
            open(out);
            out.push_str("><cim:Interval>");
            super::xsd::write_interval_ms(out, *ms);
            out.push_str("</cim:Interval>");
            close(out);
        }
        Value::Ref(epr) => {
            // a: and w: are redeclared here, as WinRM does on reference properties, so
            // the element stands alone when a client copies it out (libvirt does).
            open(out);
            out.push_str(" xmlns:a=\"");
            out.push_str(ns::ADDRESSING);
            out.push_str("\" xmlns:w=\"");
            out.push_str(ns::WSMAN);
            out.push_str("\">");
            epr.write_children(out);
            close(out);
        }
        Value::Array(values) if values.is_empty() => write_property(out, name, &Value::Null),
        Value::Array(values) => {
            for v in values {
                write_property(out, name, v);
            }
        }
    }
}

/// The escaping rule for callers that build XML as strings: safe in element text and in a
/// double-quoted attribute value alike (it is [`escape_attr_into`]; in text the extra
/// character references read back as the same characters), so no caller has to think about
/// which context it is in. Requests, embedded instances and reports all use it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_attr_into(&mut out, s);
    out
}

/// Escapes text content. Characters XML 1.0 cannot carry at all (most C0 controls,
/// U+FFFE/U+FFFF) become U+FFFD, because a malformed response is worse than a replaced
/// character; `\r` is written as `&#13;` so that it survives end-of-line normalisation.
pub fn escape_into(out: &mut String, s: &str) {
    escape_impl(out, s, false);
}

/// Escapes an attribute value: as [`escape_into`], plus quotes and the whitespace that
/// attribute-value normalisation would otherwise turn into spaces.
pub fn escape_attr_into(out: &mut String, s: &str) {
    escape_impl(out, s, true);
}

fn escape_impl(out: &mut String, s: &str, attr: bool) {
    // Fast path: plain printable ASCII with nothing to escape (nearly every value).
    if is_plain(s.as_bytes(), attr) {
        out.push_str(s);
        return;
    }
    // Otherwise the unescaped runs between replacements go in whole, not a char at a time.
    out.reserve(s.len() + 16);
    let mut rest = s;
    while let Some(at) = rest.find(|c| replacement(c, attr).is_some()) {
        let Some((run, tail)) = rest.split_at_checked(at) else {
            break;
        };
        let mut chars = tail.chars();
        let Some(rep) = chars.next().and_then(|c| replacement(c, attr)) else {
            break;
        };
        out.push_str(run);
        out.push_str(rep);
        rest = chars.as_str();
    }
    out.push_str(rest);
}

/// What a character is written as when it cannot stand as itself; `None` when it can.
fn replacement(c: char, attr: bool) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '\r' => Some("&#13;"),
        '"' if attr => Some("&quot;"),
        '\n' if attr => Some("&#10;"),
        '\t' if attr => Some("&#9;"),
        c if is_forbidden_char(c) => Some("\u{FFFD}"),
        _ => None,
    }
}

/// Whether `bytes` are all written as they are: printable ASCII but `&`, `<`, `>` (and `"`
/// in an attribute). Eight bytes at a time, as bit tricks on a `u64` (a byte lookup each was
/// most of writing a response's text); each test below is exact for "some byte is …",
/// because a borrow or carry only leaves a byte that already answers yes. A `"` in text
/// fails the test too and is then written as itself by the careful path.
fn is_plain(bytes: &[u8], attr: bool) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte that is not plain (and perhaps of the bytes after it).
    let flags = |x: u64| {
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        // 0x7F and above: DEL and every byte of a non-ASCII character.
        let not_ascii = x.wrapping_add(ONES) | x;
        // `<` (0x3C) and `>` (0x3E) differ in bit 1 only, `"` (0x22) and `&` (0x26) in bit 2;
        // a zero byte of `v` is a match.
        let angle = (x | (ONES * 0x02)) ^ (ONES * u64::from(b'>'));
        let amp = (x | (ONES * 0x04)) ^ (ONES * u64::from(b'&'));
        let zero = |v: u64| v.wrapping_sub(ONES) & !v;
        (control | not_ascii | zero(angle) | zero(amp)) & HIGH
    };
    // Two words per test: one branch per 16 bytes.
    let (pairs, rest) = bytes.as_chunks::<16>();
    let (words, rest) = rest.as_chunks::<8>();
    let word = |w: &[u8; 8]| u64::from_ne_bytes(*w);
    let table = if attr { &PLAIN_ATTR } else { &PLAIN_TEXT };
    pairs.iter().all(|pair| {
        let (a, b) = pair.split_at(8);
        let (a, b) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
        a.iter().chain(b).fold(0, |acc, w| acc | flags(word(w))) == 0
    }) && words.iter().all(|w| flags(word(w)) == 0)
        && rest.iter().all(|b| table[usize::from(*b)])
}

/// Bytes written as they are in text: printable ASCII but `&`, `<` and `>`.
const PLAIN_TEXT: [bool; 256] = plain_bytes(false);
/// The same in a double-quoted attribute value, which also escapes `"`.
const PLAIN_ATTR: [bool; 256] = plain_bytes(true);

const fn plain_bytes(attr: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7F {
        let special = matches!(b as u8, b'&' | b'<' | b'>') || (attr && b as u8 == b'"');
        t[b] = !special;
        b += 1;
    }
    t
}

fn is_forbidden_char(c: char) -> bool {
    (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: ReplyHeader<'static> = ReplyHeader {
        message_guid: "0B3DD648-8231-4CBB-9626-B1EB0FB07A53",
        relates_to: Some("uuid:452E314E-4267-4F1D-AE4F-5E3483848E3B"),
        lang: None,
    };
    const JOB_URI: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ConcreteJob";

    fn doc(xml: &str) -> roxmltree::Document<'_> {
        match roxmltree::Document::parse(xml) {
            Ok(d) => d,
            Err(e) => panic!("{e}\n{xml}"),
        }
    }

    fn find<'a, 'i>(
        n: roxmltree::Node<'a, 'i>,
        uri: &str,
        local: &str,
    ) -> Option<roxmltree::Node<'a, 'i>> {
        n.descendants()
            .find(|d| d.tag_name().namespace() == Some(uri) && d.tag_name().name() == local)
    }

    fn job() -> Instance {
        Instance {
            class: "Msvm_ConcreteJob".into(),
            resource_uri: JOB_URI.into(),
            props: vec![
                ("Caption".into(), Value::Text("Fail & back <now>".into())),
                ("ElapsedTime".into(), Value::Interval(2_000)),
                ("ErrorCode".into(), Value::Int(0)),
                ("ErrorDescription".into(), Value::Null),
                ("IsFinal".into(), Value::Bool(true)),
                ("StartTime".into(), Value::Datetime(1_714_557_600_123)),
                (
                    "Owner".into(),
                    Value::Ref(Box::new(Epr::new(
                        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ComputerSystem",
                        [("Name", "HV01")],
                    ))),
                ),
                (
                    "Tags".into(),
                    Value::Array(vec![Value::Text("a".into()), Value::Null, Value::Int(3)]),
                ),
                ("Empty".into(), Value::Array(vec![])),
            ],
        }
    }

    #[test]
    fn get_response_round_trip() {
        let xml = get_response(&H, &job());
        let d = doc(&xml);
        let root = d.root_element();
        assert_eq!(root.attribute((ns::XML, "lang")), Some("en-US"));
        let text = |local| find(root, ns::ADDRESSING, local).and_then(|n| n.text());
        assert_eq!(text("Action"), Some(ns::action::GET_RESPONSE));
        assert_eq!(text("RelatesTo"), H.relates_to);
        assert_eq!(text("To"), Some(ns::ANONYMOUS));
        assert_eq!(
            text("MessageID"),
            Some("uuid:0B3DD648-8231-4CBB-9626-B1EB0FB07A53")
        );
        let inst = find(root, JOB_URI, "Msvm_ConcreteJob");
        let Some(inst) = inst else {
            panic!("no instance in {xml}")
        };
        assert_eq!(
            inst.attribute((ns::XSI, "type")),
            Some("p:Msvm_ConcreteJob_Type")
        );
        assert_eq!(inst.lookup_namespace_uri(Some("p")), Some(JOB_URI));
        let prop = |local| find(inst, JOB_URI, local);
        assert_eq!(
            prop("Caption").and_then(|n| n.text()),
            Some("Fail & back <now>")
        );
        assert_eq!(
            prop("ElapsedTime")
                .and_then(|n| find(n, ns::CIM_COMMON, "Interval"))
                .and_then(|n| n.text()),
            Some("P0DT0H0M2S")
        );
        assert_eq!(
            prop("StartTime")
                .and_then(|n| find(n, ns::CIM_COMMON, "Datetime"))
                .and_then(|n| n.text()),
            Some("2024-05-01T10:00:00.123Z")
        );
        assert_eq!(
            prop("ErrorDescription").and_then(|n| n.attribute((ns::XSI, "nil"))),
            Some("true")
        );
        assert_eq!(prop("IsFinal").and_then(|n| n.text()), Some("true"));
        let sel = prop("Owner")
            .and_then(|n| find(n, ns::WSMAN, "Selector"))
            .filter(|n| n.attribute("Name") == Some("Name"))
            .and_then(|n| n.text());
        assert_eq!(sel, Some("HV01"));
        let tags: Vec<_> = inst
            .children()
            .filter(|c| c.tag_name().name() == "Tags")
            .map(|c| c.text().unwrap_or("<nil>"))
            .collect();
        assert_eq!(tags, ["a", "<nil>", "3"]);
        let empty: Vec<_> = inst
            .children()
            .filter(|c| c.tag_name().name() == "Empty")
            .collect();
        assert_eq!(empty.len(), 1);
        assert_eq!(
            empty.first().and_then(|n| n.attribute((ns::XSI, "nil"))),
            Some("true")
        );
    }

    #[test]
    fn enumeration_responses() {
        let inst = job();
        let epr = Epr::new(JOB_URI, [("InstanceID", "X")]);
        let items = [Item::Instance(&inst), Item::Epr(&epr)];

        let xml = enumerate_response_optimized(&H, &items, Some("uuid:CTX"), true);
        let d = doc(&xml);
        let resp = find(d.root_element(), ns::ENUMERATION, "EnumerateResponse");
        let Some(resp) = resp else { panic!("{xml}") };
        assert_eq!(
            find(resp, ns::ENUMERATION, "EnumerationContext").and_then(|n| n.text()),
            Some("uuid:CTX")
        );
        let wi = find(resp, ns::WSMAN, "Items");
        assert_eq!(
            wi.map(|n| n.children().filter(|c| c.is_element()).count()),
            Some(2)
        );
        assert!(find(resp, ns::WSMAN, "EndOfSequence").is_some());
        let epr_el = find(resp, ns::ADDRESSING, "EndpointReference");
        assert!(
            epr_el
                .and_then(|n| find(n, ns::ADDRESSING, "ReferenceParameters"))
                .is_some()
        );

        let xml = pull_response(&H, &items[..1], None, true);
        let d = doc(&xml);
        let root = d.root_element();
        assert_eq!(
            find(root, ns::ADDRESSING, "Action").and_then(|n| n.text()),
            Some(ns::action::PULL_RESPONSE)
        );
        let resp = find(root, ns::ENUMERATION, "PullResponse");
        assert!(
            resp.and_then(|r| find(r, ns::ENUMERATION, "Items"))
                .is_some()
        );
        assert!(
            resp.and_then(|r| find(r, ns::ENUMERATION, "EnumerationContext"))
                .is_none()
        );
        assert!(
            resp.and_then(|r| find(r, ns::ENUMERATION, "EndOfSequence"))
                .is_some()
        );

        let xml = pull_response(&H, &items[..1], Some("uuid:NEXT"), false);
        assert!(xml.contains("<n:EnumerationContext>uuid:NEXT</n:EnumerationContext>"));
        assert!(!xml.contains("EndOfSequence"));

        let xml = enumerate_response(&H, "uuid:C2");
        let d = doc(&xml);
        assert_eq!(
            find(d.root_element(), ns::ENUMERATION, "EnumerationContext").and_then(|n| n.text()),
            Some("uuid:C2")
        );

        let xml = release_response(&H);
        let d = doc(&xml);
        let body = find(d.root_element(), ns::SOAP, "Body");
        assert_eq!(body.map(|b| b.children().count()), Some(0));
    }

    #[test]
    fn invoke_response_shape_matches_libvirt_xpaths() {
        let svc = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ReplicationService";
        let job = Epr::new(JOB_URI, [("InstanceID", "9C7D3E22")]);
        let xml = invoke_response(
            &H,
            svc,
            "InitiateFailback",
            &[("Job", Value::Ref(Box::new(job)))],
            4096,
        );
        let d = doc(&xml);
        let root = d.root_element();
        assert_eq!(
            find(root, ns::ADDRESSING, "Action").and_then(|n| n.text()),
            Some(format!("{svc}/InitiateFailbackResponse").as_str())
        );
        // /s:Envelope/s:Body/p:InitiateFailback_OUTPUT/p:ReturnValue
        let output = find(root, ns::SOAP, "Body")
            .and_then(|b| b.first_element_child())
            .filter(|o| {
                o.tag_name().namespace() == Some(svc)
                    && o.tag_name().name() == "InitiateFailback_OUTPUT"
            });
        let Some(output) = output else {
            panic!("{xml}")
        };
        let rv = output
            .children()
            .find(|c| c.tag_name().name() == "ReturnValue");
        assert_eq!(rv.and_then(|n| n.text()), Some("4096"));
        // …/p:Job/a:ReferenceParameters/w:SelectorSet/w:Selector[@Name='InstanceID']
        let job = output.children().find(|c| c.tag_name().name() == "Job");
        let rp = job.and_then(|j| {
            j.children().find(|c| {
                c.tag_name().namespace() == Some(ns::ADDRESSING)
                    && c.tag_name().name() == "ReferenceParameters"
            })
        });
        let id = rp
            .and_then(|r| find(r, ns::WSMAN, "Selector"))
            .filter(|s| s.attribute("Name") == Some("InstanceID"))
            .and_then(|s| s.text());
        assert_eq!(id, Some("9C7D3E22"));
        assert!(
            !xml.contains("EndpointReference"),
            "no wrapper around the job EPR"
        );
    }

    #[test]
    fn identify() {
        let xml = identify_response_with_profiles(
            "Microsoft Corporation",
            "OS: 10.0.17763 SP: 0.0 Stack: 3.0",
            ns::PROTOCOL_VERSION,
            &["http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/basic"],
        );
        let d = doc(&xml);
        let r = find(d.root_element(), ns::IDENTIFY, "IdentifyResponse");
        assert_eq!(
            r.and_then(|r| find(r, ns::IDENTIFY, "ProductVendor"))
                .and_then(|n| n.text()),
            Some("Microsoft Corporation")
        );
        assert_eq!(
            r.and_then(|r| find(r, ns::IDENTIFY, "ProtocolVersion"))
                .and_then(|n| n.text()),
            Some(ns::WSMAN)
        );
        assert!(
            r.and_then(|r| find(r, ns::IDENTIFY, "SecurityProfileName"))
                .is_some()
        );
        let plain = identify_response("V", "1", ns::PROTOCOL_VERSION);
        assert!(!plain.contains("SecurityProfiles"));
        assert!(
            doc(&plain)
                .root_element()
                .has_tag_name((ns::SOAP, "Envelope"))
        );
    }

    #[test]
    fn escaping_survives_a_parser() {
        let nasty = "a&b<c>d\"e'f\r\ng\th\u{1}i\u{FFFF}";
        let inst = Instance {
            class: "C".into(),
            resource_uri: "urn:c?x=\"1\"&y=<2>".into(),
            props: vec![("P".into(), Value::Text(nasty.into()))],
        };
        let h = ReplyHeader {
            message_guid: "G",
            relates_to: Some("uuid:\"<&>"),
            lang: Some("e\"n"),
        };
        let xml = get_response(&h, &inst);
        let d = doc(&xml);
        let root = d.root_element();
        assert_eq!(root.attribute((ns::XML, "lang")), Some("e\"n"));
        assert_eq!(
            find(root, ns::ADDRESSING, "RelatesTo").and_then(|n| n.text()),
            Some("uuid:\"<&>")
        );
        let p = find(root, "urn:c?x=\"1\"&y=<2>", "P").and_then(|n| n.text());
        assert_eq!(p, Some("a&b<c>d\"e'f\r\ng\th\u{FFFD}i\u{FFFD}"));
    }

    #[test]
    fn one_escape_for_text_and_attributes() {
        let nasty = "a<b>&\"c\"'d'\r\n\t\u{1}";
        let escaped = escape(nasty);
        assert_eq!(
            escaped,
            "a&lt;b&gt;&amp;&quot;c&quot;'d'&#13;&#10;&#9;\u{FFFD}"
        );
        let xml = format!("<r a=\"{escaped}\">{escaped}</r>");
        let d = doc(&xml);
        let root = d.root_element();
        let read_back = "a<b>&\"c\"'d'\r\n\t\u{FFFD}";
        assert_eq!(root.attribute("a"), Some(read_back));
        assert_eq!(root.text(), Some(read_back));
    }

    #[test]
    fn word_scan_agrees_with_the_byte_table() {
        // Every byte value at every place of a pair of words, of a single word and of the
        // tail after the words, in both contexts: the word tests must answer exactly as the
        // per-byte table (but for `"` in text, which words refer to the careful path).
        const TEXT: &[u8; 27] = b"abcdefghijklmnopqrstuvwxyz0";
        for attr in [false, true] {
            let table = if attr { &PLAIN_ATTR } else { &PLAIN_TEXT };
            for len in [3, 11, 19, 27] {
                for b in 0..=u8::MAX {
                    for at in 0..len {
                        let mut bytes = TEXT[..len].to_vec();
                        bytes[at] = b;
                        let in_words = at < len - len % 8;
                        let quote_in_text = !attr && b == b'"' && in_words;
                        assert_eq!(
                            is_plain(&bytes, attr),
                            table[usize::from(b)] && !quote_in_text,
                            "byte {b:#04x} at {at} of {len}, attr {attr}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn max_envelope_size() {
        assert!(!exceeds_max_envelope_size("abc", None));
        assert!(!exceeds_max_envelope_size("abc", Some(3)));
        assert!(exceeds_max_envelope_size("abcd", Some(3)));
        assert!(exceeds_max_envelope_size("é", Some(1)), "counted in octets");
    }
}
