//! Small XML writing helpers: escaping, CDATA, name checks, and a few read helpers shared by the
//! parsers. Requests are built as strings (no writer crate) because their shape is fixed and
//! short; everything that comes from a caller goes through `escape`.

use roxmltree::Node;

/// The one escaping rule of the protocol crate (control characters become U+FFFD there).
pub use replica_wsman::writer::escape;

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

/// True when the element is `{ns}local`.
pub fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// First element child named `{ns}local`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(*c, ns, local))
}

/// All element children.
pub fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|c| c.is_element())
}

/// All text below `node` (text and CDATA children, recursively), concatenated. roxmltree's
/// `text()` only returns the first text child, which loses data when CDATA and text mix.
pub fn text_of(node: Node<'_, '_>) -> String {
    let mut out = String::new();
    for d in node.descendants() {
        if d.is_text()
            && let Some(t) = d.text()
        {
            out.push_str(t);
        }
    }
    out
}

/// `xsi:nil="true"` (or `1`, as XML Schema booleans allow).
pub fn is_nil(node: Node<'_, '_>) -> bool {
    matches!(
        node.attribute((super::ns::XSI, "nil")).map(str::trim),
        Some("true") | Some("1")
    )
}

/// Resolves a QName written in element text (such as `w:InvalidSelectors` in a fault subcode)
/// against the namespaces in scope at `node`. Unknown prefixes keep an empty namespace rather
/// than failing: a fault is still worth reporting if its subcode is odd.
pub fn resolve_qname(node: Node<'_, '_>, text: &str) -> (String, String) {
    let text = text.trim();
    match text.split_once(':') {
        Some((prefix, local)) => (
            node.lookup_namespace_uri(Some(prefix))
                .unwrap_or_default()
                .to_string(),
            local.to_string(),
        ),
        None => (
            node.lookup_namespace_uri(None)
                .unwrap_or_default()
                .to_string(),
            text.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
