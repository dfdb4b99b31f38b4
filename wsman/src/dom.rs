//! Read helpers for roxmltree documents, by namespace URI and local name: what the response
//! parsers ([`crate::response`]) and clients' own checks use.

use roxmltree::Node;

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
        node.attribute((crate::ns::XSI, "nil")).map(str::trim),
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
