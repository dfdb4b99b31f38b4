//! A WS-Management request envelope: the SOAP 1.2 headers WinRM clients send, and the body.
//!
//! Header order is free (pypsrp sorts them, winrm.exe does not) and prefixes vary by client,
//! so headers are looked up by namespace and local name. A header block marked
//! `s:mustUnderstand="true"` that we do not know is a MustUnderstand fault, as SOAP 1.2
//! requires; unknown optional headers are ignored.

use std::borrow::Cow;

use super::epr::parse_selector_set;
use super::fault::{Fault, FaultKind};
use super::ns;
use super::writer::ReplyHeader;
use super::xml::{self, Element, Limits, XmlError};
use super::xsd::parse_duration_ms;

/// A parsed request. Its strings borrow the request bytes where they can.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request<'a> {
    /// `a:Action`. `None` only for Identify, which has no addressing headers.
    pub action: Option<Cow<'a, str>>,
    /// `a:To`, the endpoint URL the client addressed.
    pub to: Option<Cow<'a, str>>,
    /// `w:ResourceURI`: the class (or `…/*` namespace) addressed.
    pub resource_uri: Option<Cow<'a, str>>,
    /// `a:MessageID` verbatim (usually `uuid:…`), to echo in `a:RelatesTo`.
    pub message_id: Option<Cow<'a, str>>,
    /// `a:ReplyTo/a:Address`.
    pub reply_to: Option<Cow<'a, str>>,
    /// `w:MaxEnvelopeSize` in octets.
    pub max_envelope_size: Option<u64>,
    /// `w:OperationTimeout` in milliseconds.
    pub operation_timeout_ms: Option<u64>,
    /// `w:Locale/@xml:lang`.
    pub locale: Option<Cow<'a, str>>,
    /// `p:DataLocale/@xml:lang`.
    pub data_locale: Option<Cow<'a, str>>,
    /// `p:SessionId` (MS-WSMV).
    pub session_id: Option<Cow<'a, str>>,
    /// `w:SelectorSet` of the header: `(Name, value)` in document order.
    pub selectors: Vec<(String, String)>,
    /// `w:OptionSet`: `(Name, value)` in document order.
    pub option_set: Vec<(String, String)>,
    /// First element child of `s:Body`; `None` for an empty body (Get, Release responses).
    pub body: Option<Element<'a>>,
}

/// What was wrong with a request, before any operation-specific processing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestErrorKind {
    #[error("the request is not well-formed XML: {0}")]
    /// Not well-formed, or over a parser limit.
    Xml(#[from] XmlError),
    #[error("the root element is {found}, not a SOAP 1.2 s:Envelope")]
    /// The root is not `{SOAP 1.2}Envelope`.
    NotSoapEnvelope {
        /// The root element as `{ns}local`.
        found: String,
    },
    #[error("the envelope has no s:Body")]
    /// No `s:Body`.
    MissingBody,
    #[error("the envelope has more than one {0}")]
    /// A second `s:Header` or `s:Body` (named).
    DuplicateEnvelopePart(&'static str),
    #[error("the request has no a:Action header")]
    /// No `a:Action` on a request that needs one (all but Identify).
    MissingAction,
    #[error("header {header} is marked mustUnderstand but is not understood")]
    /// A `mustUnderstand="true"` header this server does not implement.
    MustUnderstand {
        /// The header as written, for the fault text.
        header: String,
        /// Its namespace URI, for `s:NotUnderstood`.
        ns: Option<String>,
        /// Its local name.
        local: String,
    },
    #[error("header {header} appears more than once")]
    /// A header that may appear once appears again.
    DuplicateHeader {
        /// The header, with its usual prefix.
        header: &'static str,
    },
    #[error("header {header} has an invalid value `{value}`: {reason}")]
    /// A header whose value cannot be used.
    InvalidHeader {
        /// The header, with its usual prefix.
        header: &'static str,
        /// The value found.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    #[error("invalid w:SelectorSet or w:OptionSet: {0}")]
    /// A selector or option without a Name, or otherwise malformed.
    BadSelectorSet(String),
}

/// A refused request, with the MessageID when it could still be read (so that the fault
/// can carry `a:RelatesTo`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct RequestError {
    /// What was wrong.
    pub kind: RequestErrorKind,
    /// `a:MessageID`, if it could be read, for `a:RelatesTo`.
    pub message_id: Option<String>,
}

impl RequestError {
    /// The fault WinRM would answer with.
    pub fn fault_kind(&self) -> FaultKind {
        match &self.kind {
            RequestErrorKind::MustUnderstand { ns, local, .. } => FaultKind::MustUnderstand {
                header_ns: ns.clone(),
                header_local: local.clone(),
            },
            // DSP0226 R13.1-9 (via OpenPegasus): duplicate headers are
            // InvalidMessageInformationHeader; a bad OperationTimeout is CAPTURED as such.
            RequestErrorKind::DuplicateHeader { .. } | RequestErrorKind::InvalidHeader { .. } => {
                FaultKind::InvalidMessageInformationHeader
            }
            _ => FaultKind::SchemaValidationError,
        }
    }

    /// The fault, with this error's description as `f:Message`.
    pub fn to_fault(&self) -> Fault {
        Fault::new(self.fault_kind()).with_message(self.kind.to_string())
    }
}

impl<'a> Request<'a> {
    /// The same request with its strings copied out of the request bytes, for a request that
    /// must outlive them.
    pub fn into_owned(self) -> Request<'static> {
        let own = |s: Option<Cow<'_, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        Request {
            action: own(self.action),
            to: own(self.to),
            resource_uri: own(self.resource_uri),
            message_id: own(self.message_id),
            reply_to: own(self.reply_to),
            max_envelope_size: self.max_envelope_size,
            operation_timeout_ms: self.operation_timeout_ms,
            locale: own(self.locale),
            data_locale: own(self.data_locale),
            session_id: own(self.session_id),
            selectors: self.selectors,
            option_set: self.option_set,
            body: self.body.map(Element::into_owned),
        }
    }

    /// Parses an HTTP body with the default XML [`Limits`].
    pub fn parse(bytes: &'a [u8]) -> Result<Request<'a>, RequestError> {
        Request::parse_with(bytes, Limits::default())
    }

    /// Parses an HTTP body with explicit XML limits.
    pub fn parse_with(bytes: &'a [u8], limits: Limits) -> Result<Request<'a>, RequestError> {
        let fail = |kind| RequestError {
            kind,
            message_id: None,
        };
        let root = xml::parse_with(bytes, limits).map_err(|e| fail(e.into()))?;
        if !root.is(ns::SOAP, "Envelope") {
            return Err(fail(RequestErrorKind::NotSoapEnvelope {
                found: root.clark_name(),
            }));
        }
        let mut header = None;
        let mut body = None;
        for child in root.children {
            let slot = match (child.ns.as_deref(), &*child.local) {
                (Some(ns::SOAP), "Header") => &mut header,
                (Some(ns::SOAP), "Body") => &mut body,
                _ => continue,
            };
            if slot.is_some() {
                let part = if child.local == "Header" {
                    "s:Header"
                } else {
                    "s:Body"
                };
                return Err(fail(RequestErrorKind::DuplicateEnvelopePart(part)));
            }
            *slot = Some(child);
        }

        let mut req = Request::default();
        let mut first_error = None;
        if let Some(header) = header {
            // Keep reading after an error: the MessageID may come later, and the fault
            // should still carry it in RelatesTo.
            for block in &header.children {
                if let Err(kind) = req.read_header(block) {
                    first_error.get_or_insert(kind);
                }
            }
        }
        let fail = |kind| RequestError {
            kind,
            message_id: req.message_id.as_deref().map(str::to_owned),
        };
        if let Some(kind) = first_error {
            return Err(fail(kind));
        }
        let Some(body) = body else {
            return Err(fail(RequestErrorKind::MissingBody));
        };
        let first = body.children.into_iter().next();
        if req.action.is_none()
            && !first
                .as_ref()
                .is_some_and(|b| b.is(ns::IDENTIFY, "Identify"))
        {
            return Err(fail(RequestErrorKind::MissingAction));
        }
        req.body = first;
        Ok(req)
    }

    fn read_header(&mut self, block: &Element<'a>) -> Result<(), RequestErrorKind> {
        // SOAP 1.2 §2.2: a block aimed at another role is not ours to process, not even
        // to fault on. No WinRM client sets roles; this only keeps us standard.
        if let Some(role) = block.attr_ns(ns::SOAP, "role").map(str::trim)
            && !matches!(role, SOAP_ROLE_NEXT | SOAP_ROLE_ULTIMATE_RECEIVER)
        {
            return Ok(());
        }
        let must_understand = match block.attr_ns(ns::SOAP, "mustUnderstand").map(str::trim) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(RequestErrorKind::InvalidHeader {
                    header: "s:mustUnderstand",
                    value: other.to_owned(),
                    reason: "not an xs:boolean".to_owned(),
                });
            }
        };
        let text = || Some(block.text_trimmed_cow());
        match (block.ns.as_deref(), &*block.local) {
            (Some(ns::ADDRESSING), "Action") => set_once(&mut self.action, "a:Action", text()),
            (Some(ns::ADDRESSING), "To") => set_once(&mut self.to, "a:To", text()),
            (Some(ns::ADDRESSING), "MessageID") => {
                set_once(&mut self.message_id, "a:MessageID", text())
            }
            (Some(ns::ADDRESSING), "ReplyTo") => {
                let address = block
                    .child(ns::ADDRESSING, "Address")
                    .map(|a| a.text_trimmed_cow())
                    .unwrap_or_default();
                set_once(&mut self.reply_to, "a:ReplyTo", Some(address))
            }
            // Understood and irrelevant: replies always go back on the HTTP response.
            (Some(ns::ADDRESSING), "FaultTo" | "From") => Ok(()),
            (Some(ns::WSMAN), "ResourceURI") => {
                set_once(&mut self.resource_uri, "w:ResourceURI", text())
            }
            (Some(ns::WSMAN), "SelectorSet") => {
                if !self.selectors.is_empty() {
                    return Err(RequestErrorKind::DuplicateHeader {
                        header: "w:SelectorSet",
                    });
                }
                self.selectors = parse_selector_set(block)
                    .map_err(RequestErrorKind::BadSelectorSet)?
                    .0;
                Ok(())
            }
            (Some(ns::WSMAN), "OptionSet") => {
                if !self.option_set.is_empty() {
                    return Err(RequestErrorKind::DuplicateHeader {
                        header: "w:OptionSet",
                    });
                }
                self.option_set = block
                    .children_named(ns::WSMAN, "Option")
                    .map(|o| {
                        o.attr("Name")
                            .map(|n| (n.to_owned(), o.text_trimmed().to_owned()))
                            .ok_or_else(|| {
                                RequestErrorKind::BadSelectorSet(
                                    "w:Option without a Name attribute".to_owned(),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(())
            }
            (Some(ns::WSMAN), "MaxEnvelopeSize") => {
                let raw = block.text_trimmed();
                let size = raw
                    .parse::<u64>()
                    .map_err(|e| RequestErrorKind::InvalidHeader {
                        header: "w:MaxEnvelopeSize",
                        value: raw.to_owned(),
                        reason: e.to_string(),
                    })?;
                set_once(&mut self.max_envelope_size, "w:MaxEnvelopeSize", Some(size))
            }
            (Some(ns::WSMAN), "OperationTimeout") => {
                let ms = parse_duration_ms(block.text_trimmed()).map_err(|e| {
                    RequestErrorKind::InvalidHeader {
                        header: "w:OperationTimeout",
                        value: e.value,
                        reason: e.reason.to_owned(),
                    }
                })?;
                set_once(
                    &mut self.operation_timeout_ms,
                    "w:OperationTimeout",
                    Some(ms),
                )
            }
            (Some(ns::WSMAN), "Locale") => set_once(
                &mut self.locale,
                "w:Locale",
                block.attr_ns_cow(ns::XML, "lang"),
            ),
            // Fragment-level transfer is not implemented, but the header is WS-Management's
            // own and WinRM understands it; RequestEPR only matters for Put/Create.
            (Some(ns::WSMAN), "FragmentTransfer" | "RequestEPR") => Ok(()),
            (Some(ns::MS_WSMAN), "DataLocale") => set_once(
                &mut self.data_locale,
                "p:DataLocale",
                block.attr_ns_cow(ns::XML, "lang"),
            ),
            (Some(ns::MS_WSMAN), "SessionId") => {
                set_once(&mut self.session_id, "p:SessionId", text())
            }
            (Some(ns::MS_WSMAN), "OperationID" | "SequenceId") => Ok(()),
            _ if must_understand => Err(RequestErrorKind::MustUnderstand {
                header: block.clark_name(),
                ns: block.ns.as_deref().map(str::to_string),
                local: block.local.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether this is a WS-Management Identify request (no Action, `wsmid:Identify` body).
    pub fn is_identify(&self) -> bool {
        self.action.is_none()
            && self
                .body
                .as_ref()
                .is_some_and(|b| b.is(ns::IDENTIFY, "Identify"))
    }

    /// Value of a header selector, matched ASCII-case-insensitively like WMI key names.
    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method of a custom (invoke) action: Action `{ResourceURI}/{Method}`. `None` for
    /// any other action, or when the method is not a plain identifier, so that the name
    /// can be written back into `{Method}_OUTPUT` without escaping.
    pub fn invoke_method(&self) -> Option<&str> {
        let action = self.action.as_deref()?;
        let uri = self.resource_uri.as_deref()?;
        let method = action.strip_prefix(uri)?.strip_prefix('/')?;
        let mut chars = method.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(method)
    }

    /// Header data for a response to this request.
    pub fn reply<'r>(&'r self, message_guid: &'r str) -> ReplyHeader<'r> {
        ReplyHeader {
            message_guid,
            relates_to: self.message_id.as_deref(),
            lang: self.locale.as_deref(),
        }
    }
}

const SOAP_ROLE_NEXT: &str = "http://www.w3.org/2003/05/soap-envelope/role/next";
const SOAP_ROLE_ULTIMATE_RECEIVER: &str =
    "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver";

fn set_once<T>(
    slot: &mut Option<T>,
    header: &'static str,
    value: Option<T>,
) -> Result<(), RequestErrorKind> {
    if slot.is_some() {
        return Err(RequestErrorKind::DuplicateHeader { header });
    }
    *slot = value;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The winrm.exe RealizePlannedSystem request, verbatim from
    /// Openwsman/openwsman:bindings/ruby/tests/invoke_epr.rb (docs/facts.md#request-headers).
    pub(crate) const WINRM_EXE_INVOKE: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:To>http://10.120.4.11:5985/wsman</a:To>
    <w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_VirtualSystemManagementService</w:ResourceURI>
    <a:ReplyTo>
      <a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
    </a:ReplyTo>
    <a:Action s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_VirtualSystemManagementService/RealizePlannedSystem</a:Action>
    <w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>
    <a:MessageID>uuid:AC1C5EDE-BC24-4F46-9A15-78AAF883F2E0</a:MessageID>
    <w:Locale xml:lang="en-US" s:mustUnderstand="false"/>
    <p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>
    <p:SessionId s:mustUnderstand="false">uuid:8FAE7733-6B3B-4DB8-83E8-37C4537FCD9D</p:SessionId>
    <p:OperationID s:mustUnderstand="false">uuid:0226A933-16BB-4537-B0E6-060B962FC19D</p:OperationID>
    <p:SequenceId s:mustUnderstand="false">1</p:SequenceId>
    <w:SelectorSet>
      <w:Selector Name="CreationClassName">Msvm_VirtualSystemManagementService</w:Selector>
      <w:Selector Name="Name">vmms</w:Selector>
      <w:Selector Name="SystemCreationClassName">Msvm_ComputerSystem</w:Selector>
      <w:Selector Name="SystemName">hyperv06</w:Selector>
    </w:SelectorSet>
    <w:OperationTimeout>PT60.000S</w:OperationTimeout>
  </s:Header>
  <s:Body>
    <p:RealizePlannedSystem_INPUT xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_VirtualSystemManagementService">
      <p:PlannedSystem>
        <a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
        <a:ReferenceParameters>
          <w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_PlannedComputerSystem</w:ResourceURI>
          <w:SelectorSet>
            <w:Selector Name="CreationClassName">Msvm_PlannedComputerSystem</w:Selector>
            <w:Selector Name="Name">8FF5E6F3-A141-465B-83ED-3BFC0F59F7EF</w:Selector>
          </w:SelectorSet>
        </a:ReferenceParameters>
      </p:PlannedSystem>
    </p:RealizePlannedSystem_INPUT>
  </s:Body>
</s:Envelope>"#;

    /// The pypsrp Get request of docs/facts.md#get-and-job-polling (header verbatim from
    /// `test_wsman_update_envelope_size_150.yml`, ResourceURI and selectors swapped).
    pub(crate) const PYPSRP_GET: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:wsmv="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <wsa:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</wsa:Action>
    <wsmv:DataLocale s:mustUnderstand="false" xml:lang="en-US" />
    <wsman:Locale s:mustUnderstand="false" xml:lang="en-US" />
    <wsman:MaxEnvelopeSize s:mustUnderstand="true">153600</wsman:MaxEnvelopeSize>
    <wsa:MessageID>uuid:452E314E-4267-4F1D-AE4F-5E3483848E3B</wsa:MessageID>
    <wsman:OperationTimeout>PT20S</wsman:OperationTimeout>
    <wsa:ReplyTo><wsa:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>
    <wsman:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ConcreteJob</wsman:ResourceURI>
    <wsmv:SessionId s:mustUnderstand="false">uuid:972FD2C1-AE4A-4396-BDF9-67DF699A009B</wsmv:SessionId>
    <wsa:To>http://hv01:5985/wsman</wsa:To>
    <wsman:SelectorSet><wsman:Selector Name="InstanceID">9C7D3E22-5B1A-4C59-8E5B-3D0E8E6B1A00</wsman:Selector></wsman:SelectorSet>
  </s:Header>
  <s:Body />
</s:Envelope>"#;

    /// pywinrm's `build_wsman_header` layout (env/a/w/p, mustUnderstand as literals),
    /// with a WQL enumerate body as WinRb sends it.
    pub(crate) const PYWINRM_ENUMERATE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration">
<env:Header>
<a:To>http://windows-host:5985/wsman</a:To>
<a:ReplyTo><a:Address mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
<w:MaxEnvelopeSize mustUnderstand="true">153600</w:MaxEnvelopeSize>
<a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID>
<w:Locale mustUnderstand="false" xml:lang="en-US"/>
<p:DataLocale mustUnderstand="false" xml:lang="en-US"/>
<w:OperationTimeout>PT20S</w:OperationTimeout>
<w:ResourceURI mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*</w:ResourceURI>
<a:Action mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action>
</env:Header>
<env:Body>
<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '9C7D3E22'</w:Filter></n:Enumerate>
</env:Body>
</env:Envelope>"#;

    fn parse(s: &str) -> Result<Request<'static>, RequestError> {
        Request::parse(s.as_bytes()).map(Request::into_owned)
    }

    fn ok(s: &str) -> Request<'static> {
        match parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn winrm_exe_capture() {
        let r = ok(WINRM_EXE_INVOKE);
        let svc = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_VirtualSystemManagementService";
        assert_eq!(r.resource_uri.as_deref(), Some(svc));
        assert_eq!(
            r.action.as_deref(),
            Some(&*format!("{svc}/RealizePlannedSystem"))
        );
        assert_eq!(r.invoke_method(), Some("RealizePlannedSystem"));
        assert_eq!(r.to.as_deref(), Some("http://10.120.4.11:5985/wsman"));
        assert_eq!(r.reply_to.as_deref(), Some(ns::ANONYMOUS));
        assert_eq!(
            r.message_id.as_deref(),
            Some("uuid:AC1C5EDE-BC24-4F46-9A15-78AAF883F2E0")
        );
        assert_eq!(r.max_envelope_size, Some(512_000));
        assert_eq!(r.operation_timeout_ms, Some(60_000));
        assert_eq!(r.locale.as_deref(), Some("en-US"));
        assert_eq!(r.data_locale.as_deref(), Some("en-US"));
        assert_eq!(
            r.session_id.as_deref(),
            Some("uuid:8FAE7733-6B3B-4DB8-83E8-37C4537FCD9D")
        );
        assert_eq!(r.selectors.len(), 4);
        assert_eq!(r.selector("systemname"), Some("hyperv06"));
        assert!(
            r.body
                .as_ref()
                .is_some_and(|b| b.is(svc, "RealizePlannedSystem_INPUT"))
        );
        let reply = r.reply("G");
        assert_eq!(
            reply.relates_to,
            Some("uuid:AC1C5EDE-BC24-4F46-9A15-78AAF883F2E0")
        );
    }

    #[test]
    fn pypsrp_capture() {
        let r = ok(PYPSRP_GET);
        assert_eq!(r.action.as_deref(), Some(ns::action::GET));
        assert_eq!(r.max_envelope_size, Some(153_600));
        assert_eq!(r.operation_timeout_ms, Some(20_000));
        assert_eq!(
            r.selectors,
            [(
                "InstanceID".to_string(),
                "9C7D3E22-5B1A-4C59-8E5B-3D0E8E6B1A00".to_string()
            )]
        );
        assert_eq!(r.body, None, "empty body of a Get");
        assert_eq!(r.invoke_method(), None);
        assert!(!r.is_identify());
    }

    #[test]
    fn pywinrm_style() {
        let r = ok(PYWINRM_ENUMERATE);
        assert_eq!(r.action.as_deref(), Some(ns::action::ENUMERATE));
        assert_eq!(r.locale.as_deref(), Some("en-US"));
        assert!(
            r.body
                .as_ref()
                .is_some_and(|b| b.is(ns::ENUMERATION, "Enumerate"))
        );
    }

    #[test]
    fn identify_without_action() {
        let r = ok(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"#,
        );
        assert!(r.is_identify());
        assert_eq!(r.action, None);
    }

    fn err(s: &str) -> RequestError {
        match parse(s) {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(e) => e,
        }
    }

    const ENV: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">"#;

    #[test]
    fn must_understand() {
        let e = err(&format!(
            r#"{ENV}<s:Header><a:MessageID>uuid:M</a:MessageID><a:Action>x</a:Action><z:Odd xmlns:z="urn:z" s:mustUnderstand="1"/></s:Header><s:Body/></s:Envelope>"#
        ));
        assert!(
            matches!(e.kind, RequestErrorKind::MustUnderstand { ref local, .. } if local == "Odd")
        );
        assert_eq!(
            e.message_id.as_deref(),
            Some("uuid:M"),
            "MessageID after the bad header is still read"
        );
        assert!(
            matches!(e.fault_kind(), FaultKind::MustUnderstand { header_ns: Some(ref n), .. } if n == "urn:z")
        );
        // Unknown but optional headers are ignored; so is mustUnderstand on nested elements.
        let r = parse(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><z:Odd xmlns:z="urn:z" s:mustUnderstand="false"><z:In s:mustUnderstand="true"/></z:Odd></s:Header><s:Body/></s:Envelope>"#
        ));
        assert!(r.is_ok());
        // A block for another SOAP role is skipped, mustUnderstand or not.
        let r = parse(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><z:Odd xmlns:z="urn:z" s:role="urn:other" s:mustUnderstand="true"/></s:Header><s:Body/></s:Envelope>"#
        ));
        assert!(r.is_ok());
        // An unprefixed mustUnderstand (pywinrm) is not the SOAP attribute, so not binding.
        let r = parse(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><z:Odd xmlns:z="urn:z" mustUnderstand="true"/></s:Header><s:Body/></s:Envelope>"#
        ));
        assert!(r.is_ok());
    }

    #[test]
    fn envelope_errors() {
        let e = err(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#,
        );
        assert!(matches!(e.kind, RequestErrorKind::NotSoapEnvelope { .. }));
        assert_eq!(e.fault_kind(), FaultKind::SchemaValidationError);
        let e = err(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action></s:Header></s:Envelope>"#
        ));
        assert_eq!(e.kind, RequestErrorKind::MissingBody);
        let e = err(&format!(
            r#"{ENV}<s:Header><a:MessageID>m</a:MessageID></s:Header><s:Body/></s:Envelope>"#
        ));
        assert_eq!(e.kind, RequestErrorKind::MissingAction);
        assert_eq!(e.message_id.as_deref(), Some("m"));
        assert_eq!(e.fault_kind(), FaultKind::SchemaValidationError);
        let e = err("<s:Envelope");
        assert!(matches!(e.kind, RequestErrorKind::Xml(_)));
        let e = err(&format!(r#"{ENV}<s:Body/><s:Body/></s:Envelope>"#));
        assert_eq!(e.kind, RequestErrorKind::DuplicateEnvelopePart("s:Body"));
    }

    #[test]
    fn header_value_errors() {
        for bad in ["PT-1S", "60", "P", "PTS"] {
            let e = err(&format!(
                r#"{ENV}<s:Header><a:Action>x</a:Action><w:OperationTimeout>{bad}</w:OperationTimeout></s:Header><s:Body/></s:Envelope>"#
            ));
            assert_eq!(
                e.fault_kind(),
                FaultKind::InvalidMessageInformationHeader,
                "{bad}"
            );
        }
        let e = err(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><w:MaxEnvelopeSize>lots</w:MaxEnvelopeSize></s:Header><s:Body/></s:Envelope>"#
        ));
        assert_eq!(e.fault_kind(), FaultKind::InvalidMessageInformationHeader);
        let e = err(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><a:Action>y</a:Action></s:Header><s:Body/></s:Envelope>"#
        ));
        assert_eq!(
            e.kind,
            RequestErrorKind::DuplicateHeader { header: "a:Action" }
        );
        let e = err(&format!(
            r#"{ENV}<s:Header><a:Action s:mustUnderstand="maybe">x</a:Action></s:Header><s:Body/></s:Envelope>"#
        ));
        assert_eq!(e.fault_kind(), FaultKind::InvalidMessageInformationHeader);
        let e = err(&format!(
            r#"{ENV}<s:Header><a:Action>x</a:Action><w:SelectorSet><w:Selector>v</w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>"#
        ));
        assert_eq!(e.fault_kind(), FaultKind::SchemaValidationError);
    }

    #[test]
    fn option_set_and_header_order() {
        let r = ok(&format!(
            r#"{ENV}<s:Body/><s:Header><w:OptionSet s:mustUnderstand="true"><w:Option Name="WMI_Flag">1</w:Option></w:OptionSet><a:Action>x</a:Action></s:Header></s:Envelope>"#
        ));
        assert_eq!(r.option_set, [("WMI_Flag".to_string(), "1".to_string())]);
    }

    #[test]
    fn invoke_method_is_an_identifier() {
        let mut r = Request {
            action: Some("urn:c/Do_It2".into()),
            resource_uri: Some("urn:c".into()),
            ..Request::default()
        };
        assert_eq!(r.invoke_method(), Some("Do_It2"));
        for bad in ["urn:c/", "urn:c/a<b", "urn:c/a/b", "urn:cc/X", "urn:c/9x"] {
            r.action = Some(bad.into());
            assert_eq!(r.invoke_method(), None, "{bad}");
        }
    }
}
