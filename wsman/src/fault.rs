//! SOAP 1.2 faults written the way WinRM writes them (docs/facts.md#faults): `s:Code` with a
//! sender/receiver value and a `w:`/`a:`/`n:` subcode, an English `s:Reason`, and an
//! `s:Detail` holding an optional `w:FaultDetail` URI and Microsoft's
//! `f:WSManFault Code="…" Machine="…"` with `f:Message`.
//!
//! Provenance of each body is stated on its [`FaultKind`] variant. "CAPTURED" means a real WinRM
//! response was recorded (docs/facts.md#faults); "winerror" means the number and English text are
//! those of the `ERROR_WSMAN_*` message table (wsmerror.h, found through the search tool), which is
//! where WinRM takes its reason texts from; INFERRED means neither.
//!
//! The same module holds the client's view of a fault, [`SoapFault`]: what a response parser
//! reads back from any server (WinRM, the simulator, a recording).

use super::ns;
use super::writer::{ReplyHeader, close_envelope, escape_attr_into, escape_into, open_envelope};

/// Which `w:FaultDetail` accompanies a `w:InvalidSelectors` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorProblem {
    /// A selector the class does not have, or a value that matches nothing.
    Unexpected,
    /// A key selector is missing.
    Insufficient,
    /// The same selector name twice.
    Duplicate,
}

/// The faults the simulator can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// CAPTURED (pypsrp `test_psrp_is_alive_invalid_selectors.yml`) for `Unexpected`;
    /// the other details use winerror numbers and texts (0x8033805A, 0x8033805F).
    InvalidSelectors(SelectorProblem),
    /// No instance for this resource URI and selectors. CAPTURED (omi
    /// `test_wsmanparser.cpp`, WinRM 2012 R2), minus the WMI `f:ProviderFault` nesting.
    DestinationUnreachable,
    /// CAPTURED (pypsrp `test_wsman.py`, Server 2008).
    SchemaValidationError,
    /// CAPTURED (pypsrp `test_wsman.py`, Server 2016): Win32 error 87.
    InvalidParameter,
    /// No WinRM capture exists; number and text from winerror (0x80338013). INFERRED shape.
    ActionNotSupported,
    /// No WinRM capture exists; `Code="5"` is ERROR_ACCESS_DENIED. INFERRED.
    AccessDenied,
    /// The response would exceed the request's MaxEnvelopeSize. Subcode and detail per
    /// DSP0226; number and text are ERROR_WSMAN_MAX_ENVELOPE_SIZE_EXCEEDED (0x80338048).
    /// INFERRED: not captured. (The brief's 2150858814 is 0x8033803E, MetadataRedirect.)
    EncodingLimit,
    /// Bad WQL or unknown class. Code CAPTURED (WinRb `soap_fault_v2.xml`); reason text
    /// from winerror (0x8033801A), INFERRED to be the one WinRM puts in `s:Reason`.
    CannotProcessFilter,
    /// A filter dialect the service does not offer (WS-Enumeration's fault). Number
    /// ERROR_WSMAN_ENUMERATE_FILTER_DIALECT_REQUESTED_UNAVAILABLE (0x80338019, windows-docs-rs);
    /// reason text INFERRED from the error's name, not captured.
    FilterDialectRequestedUnavailable,
    /// Unknown, finished or released context. winerror 0x8033801B says `s:Receiver`;
    /// INFERRED, not captured.
    InvalidEnumerationContext,
    /// A header marked mustUnderstand that we do not know. SOAP 1.2 puts `s:MustUnderstand`
    /// in the top-level Code with no subcode and names the header in `s:NotUnderstood`.
    /// Number from windows-docs-rs; body INFERRED.
    MustUnderstand {
        /// Namespace URI of the header not understood.
        header_ns: Option<String>,
        /// Its local name.
        header_local: String,
    },
    /// Bad OperationTimeout and the like. Action and number CAPTURED (pypsrp
    /// `test_psrp_is_alive_other_wsman_error.yml`); reason text from winerror.
    InvalidMessageInformationHeader,
    /// CAPTURED shape (pypsrp `test_winrs_no_cmd_shell.yml`); the real code is the
    /// provider's HRESULT, so set one with [`Fault::with_code`] (default E_FAIL).
    InternalError,
    /// OperationTimeout elapsed. Code CAPTURED (pypsrp `test_winrs_operation_timeout.yml`);
    /// reason text from winerror (0x80338029).
    TimedOut,
    /// A service quota is used up. Code 2150859173 (0x803381A5) CAPTURED (WinRb
    /// `wmi_error_v2.xml`); the simulator answers it when its memory budget has no room for
    /// one more enumeration. `s:Receiver` and the reason text INFERRED.
    QuotaLimit,
}

/// SOAP 1.2 top-level fault code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapCode {
    /// `s:Sender`: the request was wrong.
    Sender,
    /// `s:Receiver`: the server could not do it.
    Receiver,
    /// `s:MustUnderstand`: a mandatory header was not understood.
    MustUnderstand,
}

impl SoapCode {
    /// The QName as written with WinRM's `s:` prefix.
    pub fn qname(self) -> &'static str {
        match self {
            SoapCode::Sender => "s:Sender",
            SoapCode::Receiver => "s:Receiver",
            SoapCode::MustUnderstand => "s:MustUnderstand",
        }
    }
}

/// A fault subcode: its namespace and local name, plus the prefix WinRM uses for it (which
/// the envelope declares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subcode {
    /// Namespace URI of the subcode.
    pub ns: &'static str,
    /// The prefix WinRM writes it with.
    pub prefix: &'static str,
    /// Its local name.
    pub local: &'static str,
}

const fn w(local: &'static str) -> Option<Subcode> {
    Some(Subcode {
        ns: ns::WSMAN,
        prefix: "w",
        local,
    })
}
const fn a(local: &'static str) -> Option<Subcode> {
    Some(Subcode {
        ns: ns::ADDRESSING,
        prefix: "a",
        local,
    })
}
const fn n(local: &'static str) -> Option<Subcode> {
    Some(Subcode {
        ns: ns::ENUMERATION,
        prefix: "n",
        local,
    })
}

/// E_FAIL, the default `f:WSManFault Code` of an InternalError.
const E_FAIL: u32 = 0x8000_4005;

impl FaultKind {
    /// The top-level `s:Code` WinRM uses for this kind.
    pub fn soap_code(&self) -> SoapCode {
        match self {
            FaultKind::InternalError
            | FaultKind::TimedOut
            | FaultKind::QuotaLimit
            | FaultKind::InvalidEnumerationContext => SoapCode::Receiver,
            FaultKind::MustUnderstand { .. } => SoapCode::MustUnderstand,
            _ => SoapCode::Sender,
        }
    }

    /// The `s:Subcode`, if the kind has one.
    pub fn subcode(&self) -> Option<Subcode> {
        match self {
            FaultKind::InvalidSelectors(_) => w("InvalidSelectors"),
            FaultKind::DestinationUnreachable => a("DestinationUnreachable"),
            FaultKind::SchemaValidationError => w("SchemaValidationError"),
            FaultKind::InvalidParameter => w("InvalidParameter"),
            FaultKind::ActionNotSupported => a("ActionNotSupported"),
            FaultKind::AccessDenied => w("AccessDenied"),
            FaultKind::EncodingLimit => w("EncodingLimit"),
            FaultKind::CannotProcessFilter => n("CannotProcessFilter"),
            FaultKind::FilterDialectRequestedUnavailable => n("FilterDialectRequestedUnavailable"),
            FaultKind::InvalidEnumerationContext => n("InvalidEnumerationContext"),
            FaultKind::MustUnderstand { .. } => None,
            FaultKind::InvalidMessageInformationHeader => a("InvalidMessageInformationHeader"),
            FaultKind::InternalError => w("InternalError"),
            FaultKind::TimedOut => w("TimedOut"),
            FaultKind::QuotaLimit => w("QuotaLimit"),
        }
    }

    /// The header `a:Action`: it follows the subcode's specification.
    pub fn action(&self) -> &'static str {
        match self.subcode().map(|s| s.ns) {
            Some(ns::ADDRESSING) => ns::action::ADDRESSING_FAULT,
            Some(ns::ENUMERATION) => ns::action::ENUMERATION_FAULT,
            // INFERRED for MustUnderstand: WinRM's own faults all use the wsman action.
            _ => ns::action::WSMAN_FAULT,
        }
    }

    /// `f:WSManFault/@Code`, the decimal HRESULT or Win32 code clients switch on.
    pub fn wsman_code(&self) -> u32 {
        match self {
            FaultKind::InvalidSelectors(SelectorProblem::Unexpected) => 2_150_858_843,
            FaultKind::InvalidSelectors(SelectorProblem::Insufficient) => 2_150_858_842,
            FaultKind::InvalidSelectors(SelectorProblem::Duplicate) => 2_150_858_847,
            FaultKind::DestinationUnreachable => 2_150_858_752,
            FaultKind::SchemaValidationError => 2_150_858_817,
            FaultKind::InvalidParameter => 87,
            FaultKind::ActionNotSupported => 2_150_858_771,
            FaultKind::AccessDenied => 5,
            FaultKind::EncodingLimit => 2_150_858_824,
            FaultKind::CannotProcessFilter => 2_150_858_778,
            FaultKind::FilterDialectRequestedUnavailable => 2_150_858_777,
            FaultKind::InvalidEnumerationContext => 2_150_858_779,
            FaultKind::MustUnderstand { .. } => 2_150_858_768,
            FaultKind::InvalidMessageInformationHeader => 2_150_858_767,
            FaultKind::InternalError => E_FAIL,
            FaultKind::TimedOut => 2_150_858_793,
            FaultKind::QuotaLimit => 2_150_859_173,
        }
    }

    /// `w:FaultDetail` URI, when WinRM sends one.
    pub fn detail_uri(&self) -> Option<&'static str> {
        match self {
            FaultKind::InvalidSelectors(SelectorProblem::Unexpected) => {
                Some(ns::detail::UNEXPECTED_SELECTORS)
            }
            FaultKind::InvalidSelectors(SelectorProblem::Insufficient) => {
                Some(ns::detail::INSUFFICIENT_SELECTORS)
            }
            FaultKind::InvalidSelectors(SelectorProblem::Duplicate) => {
                Some(ns::detail::DUPLICATE_SELECTORS)
            }
            FaultKind::DestinationUnreachable => Some(ns::detail::INVALID_RESOURCE_URI),
            FaultKind::InvalidParameter => Some(ns::detail::INVALID_VALUE),
            FaultKind::EncodingLimit => Some(ns::detail::MAX_ENVELOPE_SIZE),
            _ => None,
        }
    }

    /// English `s:Reason` text. WinRM ends these with a space; kept, since clients that
    /// compare texts were written against real output.
    pub fn reason(&self) -> &'static str {
        match self {
            FaultKind::InvalidSelectors(SelectorProblem::Unexpected) => {
                "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. "
            }
            FaultKind::InvalidSelectors(SelectorProblem::Insufficient) => {
                "The WS-Management service cannot process the request because the request did not contain all required selectors. "
            }
            FaultKind::InvalidSelectors(SelectorProblem::Duplicate) => {
                "The WS-Management service cannot process the request because the request contains duplicate selectors. "
            }
            FaultKind::DestinationUnreachable => {
                "The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors. "
            }
            FaultKind::SchemaValidationError => {
                "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. "
            }
            FaultKind::InvalidParameter => "The parameter is incorrect. ",
            FaultKind::ActionNotSupported => {
                "The WS-Management service does not support the action specified in the request. "
            }
            FaultKind::AccessDenied => "Access is denied. ",
            FaultKind::EncodingLimit => {
                "The response that the WS-Management service computed exceeds the maximum envelope size in the request. "
            }
            FaultKind::CannotProcessFilter => {
                "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again. "
            }
            FaultKind::FilterDialectRequestedUnavailable => {
                "The filtering dialect requested is unavailable. "
            }
            FaultKind::InvalidEnumerationContext => {
                "The WS-Enumeration context in the enumeration is not valid. Enumeration may have been completed or canceled. You cannot use this enumeration context anymore. Start a new enumeration. "
            }
            FaultKind::MustUnderstand { .. } => {
                "The WS-Management service cannot process a SOAP header in the request that is marked as mustUnderstand by the client. This could be caused by the use of a version of the protocol which is not supported, or may be an incompatibility between the client and server implementations. "
            }
            FaultKind::InvalidMessageInformationHeader => {
                "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. "
            }
            FaultKind::InternalError => {
                "The WS-Management service cannot process the request because of an internal error. "
            }
            FaultKind::TimedOut => {
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout. "
            }
            FaultKind::QuotaLimit => {
                "The WS-Management service cannot process the request. This user is allowed a maximum number of concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. "
            }
        }
    }
}

/// A fault ready to be written: the kind plus the per-occurrence parts of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which fault; decides code, subcode, reason and number.
    pub kind: FaultKind,
    /// `f:Message`; the reason text when not set.
    pub message: Option<String>,
    /// `f:WSManFault/@Machine`: WinRM writes the server's host name, so the caller should
    /// set the simulated host's name; `localhost` until then.
    pub machine: String,
    /// Overrides [`FaultKind::wsman_code`] (provider HRESULTs of InternalError).
    pub code: Option<u32>,
}

impl From<FaultKind> for Fault {
    fn from(kind: FaultKind) -> Self {
        Fault::new(kind)
    }
}

impl Fault {
    /// A fault of `kind` with its default message, machine and code.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            message: None,
            machine: "localhost".to_owned(),
            code: None,
        }
    }

    /// Sets `f:Message` (the reason text otherwise).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets `f:WSManFault/@Machine` (the simulated host's name).
    pub fn with_machine(mut self, machine: impl Into<String>) -> Self {
        self.machine = machine.into();
        self
    }

    /// Overrides the `f:WSManFault/@Code` number.
    pub fn with_code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    /// WinRM answers every fault with HTTP 500 (docs/facts.md#faults); clients rely on it.
    pub fn http_status(&self) -> u16 {
        500
    }

    /// The `f:WSManFault/@Code` written: the override, else the kind's.
    pub fn wsman_code(&self) -> u32 {
        self.code.unwrap_or_else(|| self.kind.wsman_code())
    }

    /// The full SOAP envelope. `header.relates_to` should be the request's MessageID when
    /// it could be read; the `a:RelatesTo` element is omitted otherwise.
    pub fn to_xml(&self, header: &ReplyHeader<'_>) -> String {
        let mut out = String::with_capacity(1536);
        open_envelope(&mut out, header, self.kind.action(), |out| {
            if let FaultKind::MustUnderstand {
                header_ns,
                header_local,
            } = &self.kind
            {
                out.push_str("<s:NotUnderstood qname=\"");
                match header_ns {
                    Some(uri) if !uri.is_empty() => {
                        out.push_str("h:");
                        escape_attr_into(out, header_local);
                        out.push_str("\" xmlns:h=\"");
                        escape_attr_into(out, uri);
                    }
                    _ => escape_attr_into(out, header_local),
                }
                out.push_str("\"/>");
            }
        });
        out.push_str("<s:Fault><s:Code><s:Value>");
        out.push_str(self.kind.soap_code().qname());
        out.push_str("</s:Value>");
        if let Some(sub) = self.kind.subcode() {
            out.push_str("<s:Subcode><s:Value>");
            out.push_str(sub.prefix);
            out.push(':');
            out.push_str(sub.local);
            out.push_str("</s:Value></s:Subcode>");
        }
        // The reason texts are English whatever Locale asked for, and s:Text says so.
        out.push_str("</s:Code><s:Reason><s:Text xml:lang=\"en-US\">");
        escape_into(&mut out, self.kind.reason());
        out.push_str("</s:Text></s:Reason><s:Detail>");
        if let Some(uri) = self.kind.detail_uri() {
            out.push_str("<w:FaultDetail>");
            out.push_str(uri);
            out.push_str("</w:FaultDetail>");
        }
        out.push_str("<f:WSManFault xmlns:f=\"");
        out.push_str(ns::WSMAN_FAULT);
        out.push_str("\" Code=\"");
        out.push_str(&self.wsman_code().to_string());
        out.push_str("\" Machine=\"");
        escape_attr_into(&mut out, &self.machine);
        out.push_str("\"><f:Message>");
        escape_into(
            &mut out,
            self.message.as_deref().unwrap_or(self.kind.reason()),
        );
        out.push_str("</f:Message></f:WSManFault></s:Detail></s:Fault>");
        close_envelope(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The reading side

/// A namespace-qualified name, e.g. a fault subcode `{http://…/wsman.xsd}InvalidSelectors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QName {
    /// The namespace URI (empty when the prefix could not be resolved).
    pub namespace: String,
    /// The local name.
    pub local: String,
}

impl std::fmt::Display for QName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}{}", self.namespace, self.local)
    }
}

/// A SOAP 1.2 fault as a client reads it (docs/facts.md#faults): the reading side of what
/// [`Fault::to_xml`] writes, filled by [`crate::response::fault`] and
/// [`crate::response::decode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SoapFault {
    /// The HTTP status the fault came with (WinRM: 500; some servers 400 or 200).
    pub http_status: u16,
    /// `s:Code/s:Value`, e.g. `{soap-envelope}Sender` or `Receiver`.
    pub code: QName,
    /// `s:Code/s:Subcode/s:Value`, e.g. `{…/wsman.xsd}InvalidSelectors`.
    pub subcode: Option<QName>,
    /// First `s:Reason/s:Text`.
    pub reason: String,
    /// `f:WSManFault/@Code` (decimal HRESULT or Win32 code) of the outermost WSManFault.
    pub wsman_code: Option<u32>,
    /// `w:FaultDetail` URI.
    pub fault_detail: Option<String>,
    /// Text of the outermost `f:WSManFault/f:Message`, whitespace-collapsed.
    pub message: Option<String>,
    /// Header `a:Action` of the fault message.
    pub action: Option<String>,
}

impl SoapFault {
    /// `code` is `s:Sender`.
    pub fn is_sender(&self) -> bool {
        self.code.local == "Sender"
    }

    /// The subcode is `{ns}local`.
    pub fn subcode_is(&self, ns: &str, local: &str) -> bool {
        self.subcode
            .as_ref()
            .is_some_and(|s| s.namespace == ns && s.local == local)
    }
}

impl std::fmt::Display for SoapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.http_status, self.code.local)?;
        if let Some(s) = &self.subcode {
            write!(f, "/{}", s.local)?;
        }
        if let Some(c) = self.wsman_code {
            write!(f, " (code {c})")?;
        }
        write!(f, ": {}", self.reason.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<FaultKind> {
        vec![
            FaultKind::InvalidSelectors(SelectorProblem::Unexpected),
            FaultKind::InvalidSelectors(SelectorProblem::Insufficient),
            FaultKind::InvalidSelectors(SelectorProblem::Duplicate),
            FaultKind::DestinationUnreachable,
            FaultKind::SchemaValidationError,
            FaultKind::InvalidParameter,
            FaultKind::ActionNotSupported,
            FaultKind::AccessDenied,
            FaultKind::EncodingLimit,
            FaultKind::CannotProcessFilter,
            FaultKind::FilterDialectRequestedUnavailable,
            FaultKind::InvalidEnumerationContext,
            FaultKind::MustUnderstand {
                header_ns: Some("urn:x".into()),
                header_local: "Odd".into(),
            },
            FaultKind::MustUnderstand {
                header_ns: None,
                header_local: "Bare".into(),
            },
            FaultKind::InvalidMessageInformationHeader,
            FaultKind::InternalError,
            FaultKind::TimedOut,
            FaultKind::QuotaLimit,
        ]
    }

    fn find<'a, 'i>(
        n: roxmltree::Node<'a, 'i>,
        uri: &str,
        local: &str,
    ) -> Option<roxmltree::Node<'a, 'i>> {
        n.descendants()
            .find(|d| d.tag_name().namespace() == Some(uri) && d.tag_name().name() == local)
    }

    fn header() -> ReplyHeader<'static> {
        ReplyHeader {
            message_guid: "0B3DD648-8231-4CBB-9626-B1EB0FB07A53",
            relates_to: Some("uuid:452E314E-4267-4F1D-AE4F-5E3483848E3B"),
            lang: None,
        }
    }

    #[test]
    fn every_kind_serializes_to_well_formed_soap() {
        for kind in all_kinds() {
            let fault = Fault::new(kind.clone())
                .with_machine("HV-PRIMARY")
                .with_message("detail <&> text");
            assert_eq!(fault.http_status(), 500);
            let xml = fault.to_xml(&header());
            let doc = match roxmltree::Document::parse(&xml) {
                Ok(d) => d,
                Err(e) => panic!("{kind:?}: {e}\n{xml}"),
            };
            let root = doc.root_element();
            assert_eq!(root.tag_name().namespace(), Some(ns::SOAP));
            let action = find(root, ns::ADDRESSING, "Action").and_then(|n| n.text());
            assert_eq!(action, Some(kind.action()), "{kind:?}");
            let relates = find(root, ns::ADDRESSING, "RelatesTo").and_then(|n| n.text());
            assert_eq!(relates, Some("uuid:452E314E-4267-4F1D-AE4F-5E3483848E3B"));
            let code = find(root, ns::SOAP, "Code");
            let Some(code) = code else {
                panic!("no s:Code for {kind:?}")
            };
            let value = code
                .children()
                .find(|c| c.tag_name().name() == "Value")
                .and_then(|v| v.text());
            let expected_local = match kind.soap_code() {
                SoapCode::Sender => "Sender",
                SoapCode::Receiver => "Receiver",
                SoapCode::MustUnderstand => "MustUnderstand",
            };
            // Resolve the QName in the text against the in-scope namespaces.
            let (prefix, local) = value.and_then(|v| v.split_once(':')).unwrap_or(("", ""));
            assert_eq!(code.lookup_namespace_uri(Some(prefix)), Some(ns::SOAP));
            assert_eq!(local, expected_local);
            let sub = find(code, ns::SOAP, "Subcode")
                .and_then(|s| s.children().find(|c| c.tag_name().name() == "Value"));
            match (kind.subcode(), sub) {
                (Some(expected), Some(node)) => {
                    let text = node.text().unwrap_or("");
                    let (p, l) = text.split_once(':').unwrap_or(("", ""));
                    assert_eq!(
                        node.lookup_namespace_uri(Some(p)),
                        Some(expected.ns),
                        "{kind:?}"
                    );
                    assert_eq!(l, expected.local);
                }
                (None, None) => {}
                (e, s) => panic!("{kind:?}: expected subcode {e:?}, found {s:?}"),
            }
            let wsf = find(root, ns::WSMAN_FAULT, "WSManFault");
            assert_eq!(
                wsf.and_then(|n| n.attribute("Code")),
                Some(kind.wsman_code().to_string().as_str())
            );
            assert_eq!(wsf.and_then(|n| n.attribute("Machine")), Some("HV-PRIMARY"));
            let msg = find(root, ns::WSMAN_FAULT, "Message").and_then(|n| n.text());
            assert_eq!(msg, Some("detail <&> text"));
            let detail = find(root, ns::WSMAN, "FaultDetail").and_then(|n| n.text());
            assert_eq!(detail, kind.detail_uri());
            if let FaultKind::MustUnderstand {
                header_ns,
                header_local,
            } = &kind
            {
                let nu = find(root, ns::SOAP, "NotUnderstood");
                let qname = nu.and_then(|n| n.attribute("qname")).unwrap_or("");
                let (p, l) = qname.split_once(':').unwrap_or(("", qname));
                assert_eq!(l, header_local);
                let resolved =
                    nu.and_then(|n| n.lookup_namespace_uri(Some(p).filter(|p| !p.is_empty())));
                assert_eq!(resolved, header_ns.as_deref());
            }
        }
    }

    #[test]
    fn invalid_selectors_matches_capture() {
        let xml = Fault::new(FaultKind::InvalidSelectors(SelectorProblem::Unexpected))
            .with_machine("127.0.0.1")
            .to_xml(&ReplyHeader {
                message_guid: "3ED7300E-14C7-4D87-9C57-3FB6259EC2FB",
                relates_to: Some("uuid:877294B2-0B63-493A-9A91-DD6A4D68B0B3"),
                lang: Some("en-US"),
            });
        // Everything up to f:Message is byte-identical to the pypsrp capture
        // (docs/facts.md#faults).
        let captured = r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:MessageID>uuid:3ED7300E-14C7-4D87-9C57-3FB6259EC2FB</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>uuid:877294B2-0B63-493A-9A91-DD6A4D68B0B3</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request because the request contained invalid selectors for the resource. </s:Text></s:Reason><s:Detail><w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors</w:FaultDetail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="127.0.0.1"><f:Message>"#;
        assert!(xml.starts_with(captured), "{xml}");
    }

    #[test]
    fn relates_to_omitted_when_unknown_and_code_override() {
        let xml = Fault::new(FaultKind::InternalError)
            .with_code(2_147_942_402)
            .to_xml(&ReplyHeader {
                message_guid: "A",
                relates_to: None,
                lang: None,
            });
        assert!(!xml.contains("RelatesTo"));
        assert!(xml.contains("Code=\"2147942402\""));
        assert!(xml.contains("<s:Value>s:Receiver</s:Value>"));
    }
}
