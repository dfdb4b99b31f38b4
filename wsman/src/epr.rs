//! WS-Addressing endpoint references as WS-Management uses them to name a CIM instance:
//! an `a:Address` and `a:ReferenceParameters` holding `w:ResourceURI` and `w:SelectorSet`.
//!
//! One type for both ends: the simulator reads the EPRs clients send (parameters, association
//! filters) and writes its own (job references, enumeration items, reference properties); the
//! client reads the ones in responses and sends them back as parameters and Get selectors.

use serde::{Deserialize, Serialize};

use super::ns;
use super::writer::{escape_attr_into, escape_into};
use super::xml::Element;

/// Ordered selector set (`w:SelectorSet`). Order is kept because it is what goes on the wire
/// and what a recording shows; lookups ignore ASCII case because WMI key names do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorSet(pub Vec<(String, String)>);

impl SelectorSet {
    /// An empty set.
    pub fn new() -> Self {
        SelectorSet(Vec::new())
    }

    /// Builder-style append.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((name.into(), value.into()));
        self
    }

    /// Appends a selector (a repeated name is kept: the server decides what that means).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Value of the selector `name`. Selector names are matched ASCII-case-insensitively
    /// because WMI key names are case-insensitive (INFERRED for WinRM; harmless for exact
    /// clients); the first match wins.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// No selectors at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many selectors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `(name, value)` pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The pairs as a slice, for code that keeps keys as `(String, String)`.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }

    /// Writes `<w:SelectorSet>` with these selectors as text (the `w:` prefix bound by an
    /// ancestor); a request's header selectors go through here, an EPR's through
    /// [`Epr::write_children`].
    pub fn write(&self, out: &mut String) {
        write_selector_set(out, self, &[]);
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for SelectorSet {
    fn from(pairs: [(K, V); N]) -> Self {
        SelectorSet(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> From<Vec<(K, V)>> for SelectorSet {
    fn from(pairs: Vec<(K, V)>) -> Self {
        SelectorSet(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A reference to one instance: where (address), what class (resource URI) and which one
/// (selectors, i.e. the key properties).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Epr {
    /// `a:Address`: usually the anonymous role URI; WinRM writes it in every EPR it emits.
    pub address: String,
    /// `a:ReferenceParameters/w:ResourceURI`: the class of the referenced instance.
    pub resource_uri: String,
    /// `a:ReferenceParameters/w:SelectorSet`, in document order. A selector whose value is an
    /// EPR (the keys of an association class) is here with the referenced instance's path as
    /// its text ([`Epr::path_key`]), so lookups compare it like any key, and in `refs` as an
    /// EPR.
    pub selectors: SelectorSet,
    /// The selectors whose value is a nested `a:EndpointReference`, by name. Left out of the
    /// JSON when empty, so recordings of plain references keep their shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<(String, Epr)>,
}

/// How deep selectors may nest EPRs: an association's key names an instance (1); a key of an
/// association of associations would be 2. Nothing served goes further.
const MAX_REF_DEPTH: usize = 4;

/// How strictly [`Epr`] reading treats missing pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// A request: a reference without `a:ReferenceParameters`, `w:ResourceURI` or a selector
    /// `Name` cannot name an instance, so it is refused with a reason the fault carries.
    Request,
    /// A response: what a server sent is kept as far as it goes (a missing resource URI or
    /// selector name reads as empty), because a client reports answers rather than refusing
    /// them.
    Response,
}

impl Epr {
    /// A reference with the anonymous address (what WinRM writes in job references and what
    /// clients send as parameters).
    pub fn new(resource_uri: impl Into<String>, selectors: impl Into<SelectorSet>) -> Self {
        Epr {
            address: ns::ANONYMOUS.to_owned(),
            resource_uri: resource_uri.into(),
            selectors: selectors.into(),
            refs: Vec::new(),
        }
    }

    /// Class name: the last path segment of the resource URI.
    pub fn class(&self) -> &str {
        self.resource_uri
            .rsplit('/')
            .next()
            .unwrap_or(&self.resource_uri)
    }

    /// The text of a reference used as a key: WMI's relative path of the referenced instance,
    /// `Class.Key="v",…` with the keys sorted by name, as WMI writes `__RELPATH` (the class is
    /// the resource URI's last segment; `__cimnamespace` is not a key). Both a client's nested
    /// EPR and the simulator's own references go through this, so equal references compare
    /// equal whatever the selector order.
    pub fn path_key(&self) -> String {
        let mut keys: Vec<(&str, &str)> = self
            .selectors
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
            .collect();
        keys.sort_by_key(|(k, _)| k.to_ascii_lowercase());
        let keys: Vec<String> = keys
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!("{}.{}", self.class(), keys.join(","))
    }

    /// Value of a selector (ASCII case-insensitive, see [`SelectorSet::get`]).
    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors.get(name)
    }

    /// The nested EPR of a selector that holds one (an association's key), by name (ASCII
    /// case-insensitive).
    pub fn selector_ref(&self, name: &str) -> Option<&Epr> {
        self.refs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, e)| e)
    }

    /// Reads an EPR a client sent, from the element that holds `a:Address` and
    /// `a:ReferenceParameters` as direct children (winrm.exe and libvirt's form), or from an
    /// element wrapping an `a:EndpointReference` that holds them (r4sd/go-wsman's form,
    /// docs/facts.md#invoke-and-references). Refused, with the reason, when it cannot name an
    /// instance.
    pub fn from_element(el: &Element) -> Result<Epr, String> {
        read(el, 0, Strictness::Request)
    }

    /// Reads an EPR from a response: `el` is an `a:EndpointReference`, wraps one, or holds
    /// `a:Address` / `a:ReferenceParameters` directly (WinRM's form for properties and
    /// out-parameters). `None` when `el` is not a reference at all (neither an address nor
    /// reference parameters) or nests references deeper than any server writes; missing parts
    /// read as empty.
    pub fn from_response_element(el: &Element) -> Option<Epr> {
        let holder = el.child(ns::ADDRESSING, "EndpointReference").unwrap_or(el);
        if holder.child(ns::ADDRESSING, "Address").is_none()
            && holder
                .child(ns::ADDRESSING, "ReferenceParameters")
                .is_none()
        {
            return None;
        }
        read(el, 0, Strictness::Response).ok()
    }

    /// Writes `a:Address` and `a:ReferenceParameters` (no wrapper), assuming the `a:` and
    /// `w:` prefixes are bound by an ancestor. Nested references are written as an
    /// `a:EndpointReference` inside their selector.
    pub fn write_children(&self, out: &mut String) {
        out.push_str("<a:Address>");
        escape_into(out, &self.address);
        out.push_str("</a:Address><a:ReferenceParameters><w:ResourceURI>");
        escape_into(out, &self.resource_uri);
        out.push_str("</w:ResourceURI>");
        write_selector_set(out, &self.selectors, &self.refs);
        out.push_str("</a:ReferenceParameters>");
    }
}

fn write_selector_set(out: &mut String, selectors: &SelectorSet, refs: &[(String, Epr)]) {
    out.push_str("<w:SelectorSet>");
    for (name, value) in selectors.iter() {
        out.push_str("<w:Selector Name=\"");
        escape_attr_into(out, name);
        out.push_str("\">");
        // DSP0226 lets a selector's value be an EPR, and association keys are references
        // (DSP0227): written in the form issue 16 quotes, an a:EndpointReference inside.
        match refs.iter().find(|(n, _)| n == name) {
            Some((_, nested)) => {
                out.push_str("<a:EndpointReference>");
                nested.write_children(out);
                out.push_str("</a:EndpointReference>");
            }
            None => escape_into(out, value),
        }
        out.push_str("</w:Selector>");
    }
    out.push_str("</w:SelectorSet>");
}

fn read(el: &Element, depth: usize, strictness: Strictness) -> Result<Epr, String> {
    let strict = strictness == Strictness::Request;
    let holder = el.child(ns::ADDRESSING, "EndpointReference").unwrap_or(el);
    let params = holder.child(ns::ADDRESSING, "ReferenceParameters");
    if strict && params.is_none() {
        return Err(format!("{} has no a:ReferenceParameters", el.clark_name()));
    }
    let resource_uri = params.and_then(|p| p.child(ns::WSMAN, "ResourceURI"));
    if strict && resource_uri.is_none() {
        return Err(format!("{} has no w:ResourceURI", el.clark_name()));
    }
    let (selectors, refs) = match params.and_then(|p| p.child(ns::WSMAN, "SelectorSet")) {
        Some(set) => parse_selectors(set, depth, strictness)?,
        None => (SelectorSet::new(), Vec::new()),
    };
    Ok(Epr {
        address: holder
            .child(ns::ADDRESSING, "Address")
            .map(|a| a.text_trimmed().to_owned())
            .unwrap_or_default(),
        resource_uri: resource_uri
            .map(|r| r.text_trimmed().to_owned())
            .unwrap_or_default(),
        selectors,
        refs,
    })
}

/// Reads `w:Selector Name="…"` children, as a request's header carries them. Values are
/// trimmed: no WMI key has surrounding whitespace, and pretty-printing clients would
/// otherwise never match.
///
/// A selector holding an `a:EndpointReference` (matched by namespace URI) is a reference, the
/// key of an association class (DSP0226, DSP0227): its text is the referenced
/// instance's [`Epr::path_key`].
pub fn parse_selector_set(set: &Element) -> Result<SelectorSet, String> {
    parse_selectors(set, 0, Strictness::Request).map(|(selectors, _)| selectors)
}

/// The selectors as text, and the ones that are references as EPRs.
type Selectors = (SelectorSet, Vec<(String, Epr)>);

fn parse_selectors(
    set: &Element,
    depth: usize,
    strictness: Strictness,
) -> Result<Selectors, String> {
    let mut selectors = SelectorSet::new();
    let mut refs = Vec::new();
    for s in set.children_named(ns::WSMAN, "Selector") {
        let name = match (s.attr("Name"), strictness) {
            (Some(name), _) => name,
            (None, Strictness::Response) => "",
            (None, Strictness::Request) => {
                return Err("w:Selector without a Name attribute".to_owned());
            }
        };
        match s.child(ns::ADDRESSING, "EndpointReference") {
            Some(_) => {
                if depth >= MAX_REF_DEPTH {
                    return Err(format!(
                        "w:Selector {name} nests endpoint references more than {MAX_REF_DEPTH} deep"
                    ));
                }
                let nested = read(s, depth + 1, strictness)?;
                selectors.push(name, nested.path_key());
                refs.push((name.to_owned(), nested));
            }
            None => selectors.push(name, s.text_trimmed()),
        }
    }
    Ok((selectors, refs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    const A: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
    const W: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";

    /// A selector set whose `Ref` selector nests `depth` EPRs, the innermost naming a VM.
    fn nested_set(depth: usize) -> String {
        let mut inner = r#"<w:Selector Name="Name">VM</w:Selector><w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector>"#.to_string();
        for _ in 0..depth {
            inner = format!(
                r#"<w:Selector Name="Ref"><q:EndpointReference><q:Address>x</q:Address><q:ReferenceParameters><w:ResourceURI>http://h/Msvm_ComputerSystem</w:ResourceURI><w:SelectorSet>{inner}</w:SelectorSet></q:ReferenceParameters></q:EndpointReference></w:Selector>"#
            );
        }
        format!(r#"<w:SelectorSet xmlns:w="{W}" xmlns:q="{A}">{inner}</w:SelectorSet>"#)
    }

    #[test]
    fn a_nested_epr_selector_is_a_reference_by_its_sorted_path() {
        let xml = nested_set(1);
        let set = parse(xml.as_bytes()).expect("xml");
        let (selectors, refs) = parse_selectors(&set, 0, Strictness::Request).expect("selectors");
        // Keys sorted by name, whatever order the client wrote them in (WMI's __RELPATH).
        assert_eq!(
            selectors,
            SelectorSet::from([(
                "Ref",
                r#"Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="VM""#
            )])
        );
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].1.selector("name"), Some("VM"));
        // Written back as a nested a:EndpointReference, read back to the same selectors.
        let mut epr = Epr::new("http://h/Assoc", selectors.clone());
        epr.refs = refs;
        let mut out = format!(r#"<r xmlns:a="{A}" xmlns:w="{W}">"#);
        epr.write_children(&mut out);
        out.push_str("</r>");
        let back = Epr::from_element(&parse(out.as_bytes()).expect("xml")).expect("epr");
        assert_eq!(back.selectors, selectors);
    }

    /// An association instance's EPR as the simulator writes it: two keys, each a reference.
    fn association() -> Epr {
        let vm = |name: &str| {
            Epr::new(
                "http://h/Msvm_ComputerSystem",
                [("CreationClassName", "Msvm_ComputerSystem"), ("Name", name)],
            )
        };
        let (a, b) = (vm("A"), vm("B"));
        let mut epr = Epr::new(
            "http://h/Msvm_Assoc",
            [("Antecedent", a.path_key()), ("Dependent", b.path_key())],
        );
        epr.refs = vec![("Antecedent".into(), a), ("Dependent".into(), b)];
        epr
    }

    #[test]
    fn what_the_server_writes_the_client_reads_back_whole() {
        let epr = association();
        let mut out = format!(r#"<p:Ref xmlns:p="urn:x" xmlns:a="{A}" xmlns:w="{W}">"#);
        epr.write_children(&mut out);
        out.push_str("</p:Ref>");
        let el = parse(out.as_bytes()).expect("xml");
        assert_eq!(Epr::from_response_element(&el).as_ref(), Some(&epr));
        // The server reads the same text to the same value.
        assert_eq!(Epr::from_element(&el), Ok(epr.clone()));
        let back = Epr::from_response_element(&el).expect("epr");
        assert_eq!(back.class(), "Msvm_Assoc");
        assert_eq!(
            back.selector_ref("antecedent")
                .and_then(|r| r.selector("Name")),
            Some("A")
        );
        assert_eq!(
            back.selector("Dependent"),
            Some(r#"Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="B""#)
        );
    }

    #[test]
    fn json_keeps_nested_references_and_plain_ones_keep_their_shape() {
        let epr = association();
        let json = serde_json::to_string(&epr).expect("json");
        assert_eq!(serde_json::from_str::<Epr>(&json).ok(), Some(epr));
        // A recording's plain reference (written before references could nest) still reads.
        let plain = r#"{"address":"x","resource_uri":"http://h/C","selectors":[["Name","v"]]}"#;
        let read: Epr = serde_json::from_str(plain).expect("plain");
        assert_eq!(read.selector("name"), Some("v"));
        assert_eq!(serde_json::to_string(&read).ok().as_deref(), Some(plain));
    }

    #[test]
    fn a_response_is_read_leniently_a_request_strictly() {
        let no_uri = format!(
            r#"<p:R xmlns:p="urn:x" xmlns:a="{A}" xmlns:w="{W}"><a:Address>x</a:Address><a:ReferenceParameters><w:SelectorSet><w:Selector>v</w:Selector></w:SelectorSet></a:ReferenceParameters></p:R>"#
        );
        let el = parse(no_uri.as_bytes()).expect("xml");
        assert!(Epr::from_element(&el).is_err_and(|e| e.contains("ResourceURI")));
        let read = Epr::from_response_element(&el).expect("lenient");
        assert_eq!(
            (read.address.as_str(), read.resource_uri.as_str()),
            ("x", "")
        );
        assert_eq!(read.selectors, SelectorSet::from([("", "v")]));
        // Not a reference at all: the caller keeps the element as something else.
        let text = parse(b"<p:R xmlns:p=\"urn:x\">t</p:R>").expect("xml");
        assert_eq!(Epr::from_response_element(&text), None);
    }

    #[test]
    fn nesting_is_bounded_without_a_panic() {
        let ok_xml = nested_set(MAX_REF_DEPTH);
        let ok = parse(ok_xml.as_bytes()).expect("xml");
        assert!(parse_selector_set(&ok).is_ok());
        let deep_xml = nested_set(MAX_REF_DEPTH + 1);
        let deep = parse(deep_xml.as_bytes()).expect("xml");
        assert!(parse_selector_set(&deep).is_err_and(|e| e.contains("nests")));
    }
}
