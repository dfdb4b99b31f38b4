//! WS-Addressing endpoint references as WS-Management uses them to name a CIM instance:
//! an `a:Address` and `a:ReferenceParameters` holding `w:ResourceURI` and `w:SelectorSet`.

use super::ns;
use super::writer::{escape_attr_into, escape_into};
use super::xml::Element;

/// A reference to one instance: where (address), what class (resource URI) and which one
/// (selectors, i.e. the key properties).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Epr {
    /// Usually the anonymous role URI; WinRM writes it in every EPR it emits.
    pub address: String,
    /// `w:ResourceURI`: the class of the referenced instance.
    pub resource_uri: String,
    /// `(Name, value)` in document order. A selector whose value is an EPR (the keys of an
    /// association class) is here with the referenced instance's path as its text
    /// ([`Epr::path_key`]), so lookups compare it like any key, and in `refs` as an EPR.
    pub selectors: Vec<(String, String)>,
    /// The selectors whose value is a nested `a:EndpointReference`, by name.
    pub refs: Vec<(String, Epr)>,
}

/// How deep selectors may nest EPRs: an association's key names an instance (1); a key of an
/// association of associations would be 2. Nothing served goes further.
const MAX_REF_DEPTH: usize = 4;

impl Epr {
    /// An EPR with the anonymous address, as WinRM writes job references.
    pub fn anonymous(resource_uri: impl Into<String>, selectors: Vec<(String, String)>) -> Self {
        Epr {
            address: ns::ANONYMOUS.to_owned(),
            resource_uri: resource_uri.into(),
            selectors,
            refs: Vec::new(),
        }
    }

    /// The text of a reference used as a key: WMI's relative path of the referenced instance,
    /// `Class.Key="v",…` with the keys sorted by name, as WMI writes `__RELPATH` (the class is
    /// the resource URI's last segment; `__cimnamespace` is not a key). Both a client's nested
    /// EPR and the simulator's own references go through this, so equal references compare
    /// equal whatever the selector order.
    pub fn path_key(&self) -> String {
        let class = self.resource_uri.rsplit('/').next().unwrap_or_default();
        let mut keys: Vec<&(String, String)> = self
            .selectors
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
            .collect();
        keys.sort_by_key(|(k, _)| k.to_ascii_lowercase());
        let keys: Vec<String> = keys
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!("{class}.{}", keys.join(","))
    }

    /// Value of a selector. Selector names are matched ASCII-case-insensitively because
    /// WMI key names are case-insensitive (INFERRED for WinRM; harmless for exact clients).
    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads an EPR from the element that holds `a:Address` and `a:ReferenceParameters` as direct
    /// children (winrm.exe and libvirt's form), or from an element wrapping an
    /// `a:EndpointReference` that holds them (r4sd/go-wsman's form,
    /// docs/facts.md#invoke-and-references).
    pub fn from_element(el: &Element) -> Result<Epr, String> {
        Epr::from_element_at(el, 0)
    }

    fn from_element_at(el: &Element, depth: usize) -> Result<Epr, String> {
        let holder = el.child(ns::ADDRESSING, "EndpointReference").unwrap_or(el);
        let params = holder
            .child(ns::ADDRESSING, "ReferenceParameters")
            .ok_or_else(|| format!("{} has no a:ReferenceParameters", el.clark_name()))?;
        let resource_uri = params
            .child(ns::WSMAN, "ResourceURI")
            .map(|r| r.text_trimmed().to_owned())
            .ok_or_else(|| format!("{} has no w:ResourceURI", el.clark_name()))?;
        let (selectors, refs) = match params.child(ns::WSMAN, "SelectorSet") {
            Some(set) => parse_selectors(set, depth)?,
            None => (Vec::new(), Vec::new()),
        };
        Ok(Epr {
            address: holder
                .child(ns::ADDRESSING, "Address")
                .map(|a| a.text_trimmed().to_owned())
                .unwrap_or_default(),
            resource_uri,
            selectors,
            refs,
        })
    }

    /// Writes `a:Address` and `a:ReferenceParameters` (no wrapper), assuming the `a:` and
    /// `w:` prefixes are bound by an ancestor.
    pub fn write_children(&self, out: &mut String) {
        out.push_str("<a:Address>");
        escape_into(out, &self.address);
        out.push_str("</a:Address><a:ReferenceParameters><w:ResourceURI>");
        escape_into(out, &self.resource_uri);
        out.push_str("</w:ResourceURI><w:SelectorSet>");
        for (name, value) in &self.selectors {
            out.push_str("<w:Selector Name=\"");
            escape_attr_into(out, name);
            out.push_str("\">");
            // DSP0226 lets a selector's value be an EPR, and association keys are references
            // (DSP0227): written in the form issue 16 quotes, an a:EndpointReference inside.
            match self.refs.iter().find(|(n, _)| n == name) {
                Some((_, nested)) => {
                    out.push_str("<a:EndpointReference>");
                    nested.write_children(out);
                    out.push_str("</a:EndpointReference>");
                }
                None => escape_into(out, value),
            }
            out.push_str("</w:Selector>");
        }
        out.push_str("</w:SelectorSet></a:ReferenceParameters>");
    }
}

/// Reads `w:Selector Name="…"` children. Values are trimmed: no WMI key has surrounding
/// whitespace, and pretty-printing clients would otherwise never match.
///
/// A selector holding an `a:EndpointReference` (matched by namespace URI) is a reference, the
/// key of an association class (DSP0226, DSP0227): its text is the referenced
/// instance's [`Epr::path_key`].
pub fn parse_selector_set(set: &Element) -> Result<Vec<(String, String)>, String> {
    parse_selectors(set, 0).map(|(selectors, _)| selectors)
}

/// The selectors as text, and the ones that are references as EPRs.
type Selectors = (Vec<(String, String)>, Vec<(String, Epr)>);

fn parse_selectors(set: &Element, depth: usize) -> Result<Selectors, String> {
    let mut selectors = Vec::new();
    let mut refs = Vec::new();
    for s in set.children_named(ns::WSMAN, "Selector") {
        let name = s
            .attr("Name")
            .ok_or_else(|| "w:Selector without a Name attribute".to_owned())?;
        match s.child(ns::ADDRESSING, "EndpointReference") {
            Some(_) => {
                if depth >= MAX_REF_DEPTH {
                    return Err(format!(
                        "w:Selector {name} nests endpoint references more than {MAX_REF_DEPTH} deep"
                    ));
                }
                let nested = Epr::from_element_at(s, depth + 1)?;
                selectors.push((name.to_owned(), nested.path_key()));
                refs.push((name.to_owned(), nested));
            }
            None => selectors.push((name.to_owned(), s.text_trimmed().to_owned())),
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
        let (selectors, refs) = parse_selectors(&set, 0).expect("selectors");
        // Keys sorted by name, whatever order the client wrote them in (WMI's __RELPATH).
        assert_eq!(
            selectors,
            vec![(
                "Ref".to_string(),
                r#"Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="VM""#
                    .to_string()
            )]
        );
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].1.selector("name"), Some("VM"));
        // Written back as a nested a:EndpointReference, read back to the same selectors.
        let mut epr = Epr::anonymous("http://h/Assoc", selectors.clone());
        epr.refs = refs;
        let mut out = format!(r#"<r xmlns:a="{A}" xmlns:w="{W}">"#);
        epr.write_children(&mut out);
        out.push_str("</r>");
        let back = Epr::from_element(&parse(out.as_bytes()).expect("xml")).expect("epr");
        assert_eq!(back.selectors, selectors);
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
