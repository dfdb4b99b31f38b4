//! A small XML element tree, built on `quick_xml::NsReader`, that borrows the input.
//!
//! Names, attribute values and text are slices of the request bytes whenever they can be (no
//! entity or line-end to rewrite): parsing a request allocates the tree's nodes, not a copy of
//! its strings. [`Element::into_owned`] detaches a tree from its input when it must outlive it.
//!
//! Every element and attribute is resolved to (namespace URI, local name) at parse time so
//! that nothing downstream can be tempted to compare prefixes: the same envelope arrives as
//! `s:`/`a:`/`w:` from winrm.exe, `env:` from pywinrm and `wsa:`/`wsman:` from pypsrp.
//!
//! The input comes from the network, so the parser is defensive: no DTD (which is how entity
//! expansion attacks get in), only the five predefined entities and numeric character
//! references, and caps on nesting depth and element count. Errors are values, never panics.

mod fast;

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::escape::{EscapeError, resolve_xml_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

/// A namespace URI. The ones WS-Management uses are shared statics and the others are borrowed
/// from their `xmlns` declaration in the input, so parsing a request does not allocate a copy
/// of the same long URI for every element (the parser's hot path).
pub type Ns<'a> = Cow<'a, str>;

const KNOWN_NS: &[&str] = &[
    super::ns::SOAP,
    super::ns::ADDRESSING,
    super::ns::TRANSFER,
    super::ns::EVENTING,
    super::ns::ENUMERATION,
    super::ns::WSMAN,
    super::ns::MS_WSMAN,
    super::ns::WSMAN_FAULT,
    super::ns::CIM_COMMON,
    super::ns::XSI,
    super::ns::XML,
    super::ns::IDENTIFY,
];

/// One attribute, resolved. `xmlns` declarations are not kept: they are consumed by
/// namespace resolution and carry no meaning afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Namespace URI; `None` for an unprefixed attribute (attributes never take the
    /// default namespace).
    pub ns: Option<Ns<'a>>,
    /// Local name.
    pub local: Cow<'a, str>,
    /// The value after entity expansion and XML attribute-value normalisation.
    pub value: Cow<'a, str>,
}

impl Attr<'_> {
    /// The same attribute with its strings copied out of the input.
    pub fn into_owned(self) -> Attr<'static> {
        Attr {
            ns: self.ns.map(|n| Cow::Owned(n.into_owned())),
            local: Cow::Owned(self.local.into_owned()),
            value: Cow::Owned(self.value.into_owned()),
        }
    }
}

/// One element with its resolved name, attributes, child elements and direct text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element<'a> {
    /// Namespace URI; `None` when the element is in no namespace.
    pub ns: Option<Ns<'a>>,
    /// Local name.
    pub local: Cow<'a, str>,
    /// Attributes in document order (namespace declarations left out).
    pub attrs: Vec<Attr<'a>>,
    /// Child elements in document order.
    pub children: Vec<Element<'a>>,
    /// Concatenation of the direct text, CDATA and references of this element, in document
    /// order, except that whitespace-only runs next to child elements (indentation) are
    /// dropped. Empty for a pretty-printed container element.
    pub text: Cow<'a, str>,
}

impl<'a> Element<'a> {
    /// The same tree with its strings copied out of the input, for a tree that must outlive
    /// the bytes it was parsed from.
    pub fn into_owned(self) -> Element<'static> {
        Element {
            ns: self.ns.map(|n| Cow::Owned(n.into_owned())),
            local: Cow::Owned(self.local.into_owned()),
            attrs: self.attrs.into_iter().map(Attr::into_owned).collect(),
            children: self.children.into_iter().map(Element::into_owned).collect(),
            text: Cow::Owned(self.text.into_owned()),
        }
    }

    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    /// First child element named `{ns}local`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// All child elements named `{ns}local`, in document order.
    pub fn children_named<'s>(
        &'s self,
        ns: &'s str,
        local: &'s str,
    ) -> impl Iterator<Item = &'s Element<'a>> + 's {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// The direct text with XML whitespace trimmed at both ends.
    pub fn text_trimmed(&self) -> &str {
        trim_xml_space(&self.text)
    }

    /// [`Element::text_trimmed`] with the input's lifetime: still borrowed from the input when
    /// the text is, so a parsed request can keep it without a copy.
    pub fn text_trimmed_cow(&self) -> Cow<'a, str> {
        trim_cow(&self.text)
    }

    /// [`Element::attr_ns`] with the input's lifetime (see [`Element::text_trimmed_cow`]).
    pub fn attr_ns_cow(&self, ns: &str, local: &str) -> Option<Cow<'a, str>> {
        self.attrs
            .iter()
            .find(|a| a.local == local && a.ns.as_deref() == Some(ns))
            .map(|a| match &a.value {
                Cow::Borrowed(v) => Cow::Borrowed(*v),
                Cow::Owned(v) => Cow::Owned(v.clone()),
            })
    }

    /// Value of the unprefixed attribute `local` (e.g. `Name` on `w:Selector`).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| &*a.value)
    }

    /// Value of the namespaced attribute `{ns}local` (e.g. `s:mustUnderstand`, `xsi:nil`).
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.local == local && a.ns.as_deref() == Some(ns))
            .map(|a| &*a.value)
    }

    /// `{ns}local` in Clark notation, for error messages.
    pub fn clark_name(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{ns}}}{}", self.local),
            None => self.local.to_string(),
        }
    }
}

/// `text` without XML whitespace at either end, borrowed from the input when `text` is.
fn trim_cow<'a>(text: &Cow<'a, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(trim_xml_space(t)),
        Cow::Owned(t) => Cow::Owned(trim_xml_space(t).to_owned()),
    }
}

/// XML whitespace (S production): narrower than `char::is_whitespace` on purpose.
/// XML 1.0's `Char` production (surrogates cannot occur in a Rust `char`).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// `s` without XML whitespace at either end. XML whitespace is ASCII, so bytes are compared
/// (the same result as `trim_matches(is_xml_space)`, without decoding characters).
pub fn trim_xml_space(s: &str) -> &str {
    let b = s.as_bytes();
    let is = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = b.iter().position(|c| !is(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Whether `s` is XML whitespace only (or empty).
fn all_xml_space(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
}

/// XML's whitespace (production S): space, tab, CR, LF.
pub fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Hard limits of one parse. The defaults are far above any real WS-Management envelope
/// (winrm.exe's deepest is about 8 levels) and far below what could hurt the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_elements: 10_000,
        }
    }
}

/// Why a document was refused. Positions are byte offsets in the (decoded) input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("input is not valid UTF-8 (first invalid byte at offset {position})")]
    /// Not UTF-8.
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        position: usize,
    },
    #[error("input starts with a UTF-16 byte order mark but is not valid UTF-16")]
    /// A UTF-16 byte order mark on text that is not UTF-16.
    InvalidUtf16,
    #[error("XML syntax error at byte {position}: {message}")]
    /// Not well-formed.
    Syntax {
        /// Where.
        position: u64,
        /// quick-xml's description.
        message: String,
    },
    #[error("DOCTYPE/DTD at byte {position} is not allowed")]
    /// A DOCTYPE (refused: DTDs enable entity attacks).
    DoctypeForbidden {
        /// Where.
        position: u64,
    },
    #[error(
        "entity reference `&{name};` at byte {position} is not allowed (only the five predefined entities and character references are)"
    )]
    /// An entity other than the five predefined ones.
    EntityForbidden {
        /// The entity name.
        name: String,
        /// Where.
        position: u64,
    },
    #[error("character U+{code:04X} at byte {position} is not allowed in XML 1.0")]
    /// A character XML 1.0 does not allow.
    ForbiddenChar {
        /// Its code point.
        code: u32,
        /// Where.
        position: u64,
    },
    #[error("invalid character reference `&{reference};` at byte {position}")]
    /// A character reference that is malformed or names a forbidden character.
    BadCharRef {
        /// The reference as written.
        reference: String,
        /// Where.
        position: u64,
    },
    #[error("element nesting deeper than {limit} levels at byte {position}")]
    /// Nesting beyond [`Limits::max_depth`].
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where.
        position: u64,
    },
    #[error("more than {limit} elements in the document")]
    /// More elements than [`Limits::max_elements`].
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    #[error("namespace prefix `{prefix}` at byte {position} is not declared")]
    /// A prefix with no namespace declaration in scope.
    UnboundPrefix {
        /// The prefix.
        prefix: String,
        /// Where.
        position: u64,
    },
    #[error("text outside the root element at byte {position}")]
    /// Non-whitespace text before or after the root element.
    TextOutsideRoot {
        /// Where.
        position: u64,
    },
    #[error("a second root element at byte {position}")]
    /// A second top-level element.
    SecondRoot {
        /// Where.
        position: u64,
    },
    #[error("document ends inside element `{open}`")]
    /// The input ends inside an element.
    UnexpectedEof {
        /// The innermost open element.
        open: String,
    },
    #[error("document has no root element")]
    /// No element at all.
    NoRoot,
}

/// Parses a whole document with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Element<'_>, XmlError> {
    parse_with(input, Limits::default())
}

/// Parses a whole document and returns its root element. The tree borrows `input`, except
/// for UTF-16 input, which is decoded into a string of its own and so gives an owned tree.
pub fn parse_with(input: &[u8], limits: Limits) -> Result<Element<'_>, XmlError> {
    match decode(input)? {
        Cow::Borrowed(text) => parse_str_with(text, limits),
        Cow::Owned(text) => parse_str_with(&text, limits).map(Element::into_owned),
    }
}

/// What [`scan_chars`] found in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// The first character XML 1.0 does not allow: its byte offset and code point.
    forbidden: Option<(usize, u32)>,
    /// Whether a tab or a line feed occurs before that (or anywhere, when none does).
    tab_or_lf: bool,
    /// Whether a carriage return occurs before that (or anywhere, when none does).
    cr: bool,
}

/// One pass over a document's bytes for the characters XML 1.0 does not allow, noting on
/// the way whether tabs, line feeds or carriage returns occur (the fast path then knows
/// whether it has to look for them at all). In UTF-8 the only forbidden characters are the
/// C0 controls other than tab, LF and CR (one byte each) and U+FFFE/U+FFFF (`EF BF BE`/`EF
/// BF BF`); surrogates cannot occur in a `str`. Decoding every character was a tenth of a
/// request's parse time.
fn scan_chars(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut scan = Scan {
        forbidden: None,
        tab_or_lf: false,
        cr: false,
    };
    // Most of a document is printable ASCII: a 32-byte block with no byte below 0x20 and no
    // 0xEF is skipped with a branch-free test the compiler vectorises; only the other blocks
    // (those with a line end, say) are looked at byte by byte.
    let mut start = 0;
    for block in bytes.chunks(32) {
        if block
            .iter()
            .fold(false, |hit, &b| hit | (b < 0x20) | (b == 0xEF))
        {
            for (k, &b) in block.iter().enumerate() {
                let i = start + k;
                match b {
                    b'\t' | b'\n' => scan.tab_or_lf = true,
                    b'\r' => scan.cr = true,
                    0..=0x1F => {
                        scan.forbidden = Some((i, u32::from(b)));
                        return scan;
                    }
                    0xEF if bytes.get(i + 1) == Some(&0xBF) => match bytes.get(i + 2) {
                        Some(0xBE) => {
                            scan.forbidden = Some((i, 0xFFFE));
                            return scan;
                        }
                        Some(0xBF) => {
                            scan.forbidden = Some((i, 0xFFFF));
                            return scan;
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        start += block.len();
    }
    scan
}

/// `s` as a slice of `input` when it lies inside it, else a copy. quick-xml hands out names,
/// attribute values and text that do point into the input, but with the lifetime of its
/// event; this gives them back the input's lifetime without copying them.
fn rebind<'a>(input: &'a str, s: &str) -> Cow<'a, str> {
    let start = (s.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    match start
        .checked_add(s.len())
        .and_then(|end| input.get(start..end))
    {
        Some(sub) if sub.as_ptr() == s.as_ptr() => Cow::Borrowed(sub),
        _ => Cow::Owned(s.to_owned()),
    }
}

/// Appends `piece` to an element's text; the first piece is kept as it is (usually borrowed).
fn append<'a>(text: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if text.is_empty() {
        *text = piece;
    } else {
        text.to_mut().push_str(&piece);
    }
}

/// Parses a document that is already a string (embedded CIM-XML instances are).
pub fn parse_str_with(text: &str, limits: Limits) -> Result<Element<'_>, XmlError> {
    // XML 1.0 §2.2: NUL and most C0 controls are not characters of a document; WinRM's
    // parser refuses them, so a request carrying one is malformed (issue 16 §5).
    let scan = scan_chars(text);
    if let Some((i, code)) = scan.forbidden {
        return Err(XmlError::ForbiddenChar {
            code,
            position: i as u64,
        });
    }
    // The plain shape every client sends takes the one-pass path; anything else, and every
    // refusal, is quick-xml's (see `fast`).
    // Line ends would need XML's CR normalisation in text and attribute values.
    let fast = if scan.cr {
        None
    } else {
        fast::parse(text, limits, scan.tab_or_lf)
    };
    match fast {
        Some(root) => Ok(root),
        None => parse_quick_xml(text, limits),
    }
}

/// The general path: quick-xml's namespace-resolving reader, the judge of every refusal.
fn parse_quick_xml(text: &str, limits: Limits) -> Result<Element<'_>, XmlError> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element<'_>> = Vec::new();
    let mut root: Option<Element<'_>> = None;
    let mut count = 0usize;
    // Namespace URIs declared in this document, borrowed from their declarations, so that an
    // element in a namespace outside [`KNOWN_NS`] (a method's input) does not copy the URI.
    let mut declared: Vec<&str> = Vec::new();
    // Whitespace-only text is held back, borrowed from the input, until we know whether it
    // is a value (`<a> </a>`) or indentation next to child elements; indentation is then
    // dropped without ever being copied, which saves an allocation per container element.
    let mut pending_ws: Option<Cow<'_, str>> = None;

    loop {
        let position = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(map_qx_error(e, reader.error_position())),
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::SecondRoot { position });
            }
            Event::Start(start) => {
                pending_ws = None;
                count = check_limits(count, stack.len(), limits, position)?;
                stack.push(build_element(
                    text,
                    &mut declared,
                    &reader,
                    &start,
                    position,
                )?);
            }
            Event::Empty(start) => {
                pending_ws = None;
                count = check_limits(count, stack.len(), limits, position)?;
                let el = build_element(text, &mut declared, &reader, &start, position)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                // quick-xml already checked that the end tag matches its start tag.
                if let Some(mut el) = stack.pop() {
                    if let Some(ws) = pending_ws.take()
                        && el.children.is_empty()
                    {
                        append(&mut el.text, ws);
                    }
                    attach(&mut stack, &mut root, el);
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if all_xml_space(&content) {
                    if !stack.is_empty() {
                        match &mut pending_ws {
                            Some(ws) => ws.to_mut().push_str(&content),
                            None => pending_ws = Some(content),
                        }
                    }
                } else {
                    flush_ws(&mut stack, &mut pending_ws);
                    push_text(&mut stack, content, position)?;
                }
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                flush_ws(&mut stack, &mut pending_ws);
                push_text(&mut stack, content, position)?;
            }
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => Cow::Owned(c.to_string()),
                        _ => {
                            return Err(XmlError::BadCharRef {
                                reference: r.to_string(),
                                position,
                            });
                        }
                    }
                } else {
                    match resolve_xml_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => {
                            return Err(XmlError::EntityForbidden {
                                name: r.to_string(),
                                position,
                            });
                        }
                    }
                };
                flush_ws(&mut stack, &mut pending_ws);
                push_text(&mut stack, resolved, position)?;
            }
            Event::DocType(_) => return Err(XmlError::DoctypeForbidden { position }),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }

    if let Some(open) = stack.last() {
        return Err(XmlError::UnexpectedEof {
            open: open.clark_name(),
        });
    }
    root.ok_or(XmlError::NoRoot)
}

/// Decodes the HTTP body. UTF-8 (with or without BOM) is the norm; WinRM also accepts
/// UTF-16 with a BOM, which Windows clients may send, so that is decoded too.
fn decode(input: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    if let Some(rest) = input.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    let le = input.strip_prefix(&[0xFF, 0xFE]);
    let be = input.strip_prefix(&[0xFE, 0xFF]);
    let (body, little) = match (le, be) {
        (Some(b), _) => (b, true),
        (None, Some(b)) => (b, false),
        (None, None) => return utf8(input),
    };
    if body.len() % 2 != 0 {
        return Err(XmlError::InvalidUtf16);
    }
    let units = body.chunks_exact(2).map(|p| match p {
        [a, b] if little => u16::from_le_bytes([*a, *b]),
        [a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map(Cow::Owned)
        .map_err(|_| XmlError::InvalidUtf16)
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| XmlError::InvalidUtf8 {
            position: e.valid_up_to(),
        })
}

fn check_limits(
    count: usize,
    depth: usize,
    limits: Limits,
    position: u64,
) -> Result<usize, XmlError> {
    if depth >= limits.max_depth {
        return Err(XmlError::TooDeep {
            limit: limits.max_depth,
            position,
        });
    }
    if count >= limits.max_elements {
        return Err(XmlError::TooManyElements {
            limit: limits.max_elements,
        });
    }
    Ok(count + 1)
}

fn attach<'a>(stack: &mut [Element<'a>], root: &mut Option<Element<'a>>, el: Element<'a>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn flush_ws<'a>(stack: &mut [Element<'a>], pending: &mut Option<Cow<'a, str>>) {
    if let Some(ws) = pending.take()
        && let Some(top) = stack.last_mut()
    {
        append(&mut top.text, ws);
    }
}

fn push_text<'a>(
    stack: &mut [Element<'a>],
    text: Cow<'a, str>,
    position: u64,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => {
            append(&mut top.text, text);
            Ok(())
        }
        None if all_xml_space(&text) => Ok(()),
        None => Err(XmlError::TextOutsideRoot { position }),
    }
}

fn build_element<'a, R>(
    input: &'a str,
    declared: &mut Vec<&'a str>,
    reader: &NsReader<R>,
    start: &BytesStart<'_>,
    position: u64,
) -> Result<Element<'a>, XmlError> {
    let resolver = reader.resolver();
    let (res, local) = resolver.resolve_element(start.name());
    // An unbound prefix is refused before anything in the attributes; the URI itself is
    // looked up after them, since it is usually declared on this very element.
    if let ResolveResult::Unknown(prefix) = res {
        return Err(XmlError::UnboundPrefix { prefix, position });
    }
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax {
            position,
            message: format!("bad attribute: {e}"),
        })?;
        if attr.key.as_namespace_binding().is_some() {
            // Remembered for the elements that use it; a declaration with a reference in it
            // (never seen in practice) is simply not found there and gets copied.
            if let Cow::Borrowed(uri) = rebind(input, &attr.value)
                && !KNOWN_NS.contains(&uri)
            {
                declared.push(uri);
            }
            continue;
        }
        let (res, a_local) = resolver.resolve_attribute(attr.key);
        let a_ns = resolved_ns(declared, res, position)?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| map_qx_error(e, position))?;
        attrs.push(Attr {
            ns: a_ns,
            local: rebind(input, a_local.as_ref()),
            value: rebind(input, &value),
        });
    }
    let ns = resolved_ns(declared, res, position)?;
    Ok(Element {
        ns,
        local: rebind(input, local.as_ref()),
        attrs,
        children: Vec::new(),
        text: Cow::Borrowed(""),
    })
}

fn resolved_ns<'a>(
    declared: &[&'a str],
    res: ResolveResult<'_>,
    position: u64,
) -> Result<Option<Ns<'a>>, XmlError> {
    match res {
        ResolveResult::Bound(ns) => {
            let uri: &str = ns.0;
            if let Some(k) = KNOWN_NS.iter().find(|k| **k == uri) {
                return Ok(Some(Ns::Borrowed(k)));
            }
            if let Some(d) = declared.iter().rev().find(|d| **d == uri) {
                return Ok(Some(Ns::Borrowed(d)));
            }
            Ok(Some(Ns::Owned(uri.to_owned())))
        }
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(XmlError::UnboundPrefix { prefix, position }),
    }
}

/// An element whose text is a QName (`prefix:local`, as a SOAP fault's `s:Code/s:Value`
/// carries), as [`text_qnames`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQName {
    /// `(namespace URI, local name)` of the element and of each of its ancestors, root first.
    pub path: Vec<(Option<String>, String)>,
    /// The namespace the text's prefix is bound to at that element (without a prefix, the
    /// default namespace there); `None` when the prefix is not declared.
    pub ns: Option<String>,
    /// The text's local part.
    pub local: String,
}

/// Resolves the QNames written as element *text* in the elements whose path `wanted` accepts
/// (the path is `(namespace URI, local name)` from the root down to the element).
///
/// [`Element`] keeps no namespace declarations (names are resolved while the tree is built),
/// but a QName in text can only be resolved against the declarations in scope where it is
/// written, so it is read here, in a pass of its own over the same input. Meant for small,
/// rare documents (faults) that [`parse_with`] has accepted; it refuses DTDs and unknown
/// entities as [`parse_with`] does and stops at the same limits.
pub fn text_qnames(
    input: &[u8],
    limits: Limits,
    wanted: impl Fn(&[(Option<&str>, &str)]) -> bool,
) -> Result<Vec<TextQName>, XmlError> {
    let text = decode(input)?;
    let mut reader = NsReader::from_str(&text);
    let mut stack: Vec<OpenElement> = Vec::new();
    let mut found = Vec::new();
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| map_qx_error(e, reader.error_position()))?;
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            _ => (None, false),
        };
        if let Some(start) = start {
            count = check_limits(count, stack.len(), limits, position)?;
            let (res, local) = reader.resolver().resolve_element(start.name());
            let ns = match res {
                ResolveResult::Bound(ns) => Some(ns.0.to_owned()),
                ResolveResult::Unbound => None,
                ResolveResult::Unknown(prefix) => {
                    return Err(XmlError::UnboundPrefix { prefix, position });
                }
            };
            stack.push(((ns, local.as_ref().to_owned()), None));
            let path: Vec<(Option<&str>, &str)> = stack
                .iter()
                .map(|((ns, local), _)| (ns.as_deref(), local.as_str()))
                .collect();
            if wanted(&path)
                && let Some(top) = stack.last_mut()
            {
                top.1 = Some(String::new());
            }
        }
        let closes = empty || matches!(event, Event::End(_));
        match &event {
            Event::Text(t) => push_qname_text(&mut stack, &t.xml10_content()),
            Event::CData(c) => push_qname_text(&mut stack, &c.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => c.to_string(),
                        _ => {
                            return Err(XmlError::BadCharRef {
                                reference: r.to_string(),
                                position,
                            });
                        }
                    }
                } else {
                    match resolve_xml_entity(r) {
                        Some(s) => s.to_owned(),
                        None => {
                            return Err(XmlError::EntityForbidden {
                                name: r.to_string(),
                                position,
                            });
                        }
                    }
                };
                push_qname_text(&mut stack, &resolved);
            }
            Event::DocType(_) => return Err(XmlError::DoctypeForbidden { position }),
            Event::Eof => break,
            _ => {}
        }
        // Popped whether or not its text was wanted: the element is closed.
        if closes && let Some((name, Some(qname))) = stack.pop() {
            // The reader still holds this element's own declarations while its end event is
            // current, so the text resolves in the element's scope.
            let qname = trim_xml_space(&qname);
            let (res, local) = reader.resolver().resolve_element(QName(qname));
            let ns = match res {
                ResolveResult::Bound(ns) => Some(ns.0.to_owned()),
                ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
            };
            let mut path: Vec<(Option<String>, String)> =
                stack.iter().map(|(name, _)| name.clone()).collect();
            path.push(name);
            found.push(TextQName {
                path,
                ns,
                local: local.as_ref().to_owned(),
            });
        }
    }
    Ok(found)
}

/// An element open during [`text_qnames`]: its name, and its text when `wanted` asked for it.
type OpenElement = ((Option<String>, String), Option<String>);

fn push_qname_text(stack: &mut [OpenElement], piece: &str) {
    if let Some((_, Some(text))) = stack.last_mut() {
        text.push_str(piece);
    }
}

fn map_qx_error(e: quick_xml::Error, position: u64) -> XmlError {
    match e {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            XmlError::EntityForbidden { name, position }
        }
        other => XmlError::Syntax {
            position,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element<'static>, XmlError> {
        parse(s.as_bytes()).map(Element::into_owned)
    }

    #[test]
    fn resolves_namespaces_not_prefixes() {
        let a = p(r#"<x:r xmlns:x="urn:a"><x:c y:at="1" plain="2" xmlns:y="urn:b"/></x:r>"#);
        let b = p(r#"<r xmlns="urn:a"><c q:at="1" plain="2" xmlns:q="urn:b"/></r>"#);
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("both documents are well-formed");
        };
        assert_eq!(a, b);
        assert!(a.is("urn:a", "r"));
        let c = a.child("urn:a", "c");
        assert_eq!(c.and_then(|c| c.attr_ns("urn:b", "at")), Some("1"));
        assert_eq!(c.and_then(|c| c.attr("plain")), Some("2"));
        assert_eq!(
            c.map(|c| c.attrs.len()),
            Some(2),
            "xmlns declarations are dropped"
        );
    }

    #[test]
    fn text_entities_cdata_and_char_refs() {
        let el = p("<a>x &lt;&amp;&gt;&quot;&apos; &#65;&#x42;<![CDATA[<INSTANCE/>&amp;]]></a>");
        assert_eq!(el.map(|e| e.text), Ok("x <&>\"' AB<INSTANCE/>&amp;".into()));
    }

    #[test]
    fn indentation_is_dropped_but_whitespace_values_kept() {
        let el = p("<r>\n  <a>  </a>\n  <b> x </b><c> <!-- c --> </c><d>\n <e/> t</d>\n</r>");
        let Ok(el) = el else { panic!("well-formed") };
        assert_eq!(el.text, "");
        let texts: Vec<_> = el.children.iter().map(|c| &*c.text).collect();
        assert_eq!(texts, ["  ", " x ", "  ", " t"]);
        assert_eq!(
            p("<a> <![CDATA[ ]]> </a>").map(|e| e.text),
            Ok("   ".into())
        );
        assert_eq!(p("<a> &#32;</a>").map(|e| e.text), Ok("  ".into()));
    }

    #[test]
    fn attribute_values_are_unescaped() {
        let el = p(r#"<a v="&lt;x&gt; &#33;"/>"#);
        assert_eq!(el.as_ref().ok().and_then(|e| e.attr("v")), Some("<x> !"));
    }

    #[test]
    fn refuses_doctype_and_custom_entities() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><a>&lol;</a>"#;
        assert!(matches!(p(bomb), Err(XmlError::DoctypeForbidden { .. })));
        assert!(matches!(
            p("<a>&lol;</a>"),
            Err(XmlError::EntityForbidden { ref name, .. }) if name == "lol"
        ));
        assert!(matches!(
            p(r#"<a b="&ext;"/>"#),
            Err(XmlError::EntityForbidden { ref name, .. }) if name == "ext"
        ));
        assert!(matches!(p("<a>&#0;</a>"), Err(XmlError::BadCharRef { .. })));
    }

    #[test]
    fn depth_and_count_caps() {
        let deep = "<a>".repeat(65) + &"</a>".repeat(65);
        assert!(matches!(p(&deep), Err(XmlError::TooDeep { limit: 64, .. })));
        let ok = "<a>".repeat(64) + &"</a>".repeat(64);
        assert!(p(&ok).is_ok());
        let many = format!("<r>{}</r>", "<c/>".repeat(20));
        let limits = Limits {
            max_depth: 64,
            max_elements: 10,
        };
        assert!(matches!(
            parse_with(many.as_bytes(), limits),
            Err(XmlError::TooManyElements { limit: 10 })
        ));
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(p(""), Err(XmlError::NoRoot)));
        assert!(matches!(
            p("<a>"),
            Err(XmlError::UnexpectedEof { .. }) | Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(p("<a></b>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(p("<a/><b/>"), Err(XmlError::SecondRoot { .. })));
        assert!(matches!(p("x<a/>"), Err(XmlError::TextOutsideRoot { .. })));
        assert!(matches!(p("<q:a/>"), Err(XmlError::UnboundPrefix { .. })));
        assert!(matches!(
            parse(&[b'<', b'a', b'>', 0xFF, b'<', b'/', b'a', b'>']),
            Err(XmlError::InvalidUtf8 { position: 3 })
        ));
    }

    #[test]
    fn utf16_and_bom() {
        let mut le = vec![0xFF, 0xFE];
        for u in "<a>é</a>".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(parse(&le).map(|e| e.text), Ok("é".into()));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(b"<a/>");
        assert!(parse(&bom).is_ok());
    }

    #[test]
    fn xml_lang_resolves_to_xml_namespace() {
        let el = p(r#"<a xml:lang="en-US"/>"#);
        assert_eq!(
            el.as_ref()
                .ok()
                .and_then(|e| e.attr_ns(crate::ns::XML, "lang")),
            Some("en-US")
        );
    }

    #[test]
    fn forbidden_char_scan_agrees_with_a_char_by_char_scan() {
        // The same answer as decoding every character, and the line-end flags of the
        // characters before the culprit.
        let check_scan = |t: &str| {
            let forbidden = t
                .char_indices()
                .find(|(_, c)| !is_xml_char(*c))
                .map(|(i, c)| (i, u32::from(c)));
            let before = &t[..forbidden.map_or(t.len(), |(i, _)| i)];
            let want = Scan {
                forbidden,
                tab_or_lf: before.contains(['\t', '\n']),
                cr: before.contains('\r'),
            };
            assert_eq!(scan_chars(t), want, "{t:?}");
        };
        for t in [
            "",
            "<a>plain</a>",
            "tab\there\r\n",
            "é\u{1}",
            "x\u{0}",
            "\u{1F}",
            "ok \u{FFFD} \u{10FFFF} \u{EFBF}",
            "€\u{FFFE}",
            "𝄞\u{FFFF}y",
            "\u{FFFD}\u{FFFE}",
            "\u{F000}\u{7F}\u{80}",
        ] {
            check_scan(t);
        }
        // Around the 32-byte blocks of the fast scan, with line ends before the culprit.
        for at in [0, 1, 30, 31, 32, 33, 62, 63, 64, 65, 90] {
            for bad in [
                "\u{1}", "\u{FFFE}", "\u{FFFF}", "\u{FFFD}", "\n", "\t", "\r",
            ] {
                let t = format!("{}\n{}{bad}tail", "a".repeat(at), "b".repeat(at % 7));
                check_scan(&t);
            }
        }
    }

    #[test]
    fn byte_trim_agrees_with_char_trim() {
        for t in [
            "",
            " ",
            " \t\r\n",
            "a",
            " a ",
            "\u{A0}x\u{A0}",
            "\n é \u{2003}\t",
            "x y",
        ] {
            assert_eq!(trim_xml_space(t), t.trim_matches(is_xml_space), "{t:?}");
            assert_eq!(all_xml_space(t), t.chars().all(is_xml_space), "{t:?}");
        }
    }

    #[test]
    fn names_values_and_text_borrow_the_input() {
        let doc = r#"<r xmlns="urn:x" a="v"><c>text</c><d>a&amp;b</d></r>"#;
        let Ok(el) = parse(doc.as_bytes()) else {
            panic!("well-formed")
        };
        assert!(matches!(el.local, Cow::Borrowed("r")));
        assert!(matches!(el.ns, Some(Cow::Borrowed("urn:x"))));
        assert!(matches!(el.attrs[0].value, Cow::Borrowed("v")));
        assert!(matches!(el.children[0].text, Cow::Borrowed("text")));
        // An entity has to be expanded, so that text is a copy.
        assert_eq!(el.children[1].text, "a&b");
    }

    #[test]
    fn nul_and_control_characters_are_refused() {
        for doc in [
            "<a>x\u{0}y</a>",
            "<a>x&#0;y</a>",
            "<a>x&#x1;y</a>",
            "<a b=\"\u{1}\"/>",
        ] {
            assert!(
                matches!(
                    parse(doc.as_bytes()),
                    Err(XmlError::ForbiddenChar { .. } | XmlError::BadCharRef { .. })
                ),
                "{doc:?}"
            );
        }
        assert!(parse("<a>tab\there&#x9;&#xD7FF;</a>".as_bytes()).is_ok());
    }
}
