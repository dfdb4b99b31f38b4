//! WS-Management as WinRM speaks it, for both ends of the wire: the simulator (server) and the
//! replica-client use this one crate, so a namespace, an escaping rule, a CIM datetime or
//! a fault shape is written once.
//!
//! It knows nothing of Hyper-V replication (that is `replica-core`, which this crate does not
//! depend on), nothing of HTTP, sockets or authentication (`replica-sim`'s server, the client,
//! `replica-ntlm`), and nothing of which classes exist: a class is a name and a resource URI,
//! an instance a bag of properties.
//!
//! Server side (requests in, responses out):
//! - [`xml`]: a small element tree on quick-xml's `NsReader`, borrowing its input, resolved to
//!   namespace URIs, with hard limits (no DTDs, no entities, capped depth and size). The
//!   crate's one XML reader: requests here, responses on the client side.
//! - [`envelope`]: a request's SOAP envelope and WS-Addressing / WS-Management headers.
//! - [`body`]: Enumerate, Pull, Release and method-input bodies.
//! - [`wql`]: the WQL subset clients send in enumeration filters.
//! - [`writer`]: response envelopes with WinRM's prefixes, and the one escaping rule.
//! - [`fault`]: SOAP faults with WinRM's codes and texts ([`fault::Fault`]), and the client's
//!   reading of any fault ([`fault::SoapFault`]).
//!
//! Client side (requests out, responses in):
//! - [`request`]: request envelopes and bodies in winrm.exe's layout.
//! - [`response`]: response parsing into [`values`], on the same reader as requests
//!   ([`xml`], with [`response::RESPONSE_LIMITS`] sized for answers).
//!
//! Shared:
//! - [`ns`]: the one table of namespace, action and resource URIs.
//! - [`epr`]: endpoint references and selector sets, one type for both ends: the server
//!   reads and writes them, the client reads them from responses and sends them back
//!   (nested references, an association's keys, included).
//! - [`cimxml`]: CIM-XML embedded instances (reader and writer).
//! - [`xsd`]: times on the wire: `xs:duration`, `xs:dateTime` and the DMTF datetime and
//!   interval forms.
//!
//! Parsing never panics on wire input: every parser returns a typed error.

#![deny(missing_docs)]

pub mod body;
pub mod cimxml;
pub mod envelope;
pub mod epr;
pub mod fault;
pub mod ns;
pub mod request;
pub mod response;
pub mod values;
pub mod wql;
pub mod writer;
pub mod xml;
pub mod xsd;

#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;

pub use body::{
    BodyError, EnumerateRequest, EnumerationMode, Filter, InvokeInput, ParamValue, PullRequest,
    ReleaseRequest,
};
pub use cimxml::{CimError, CimValue, EmbeddedInstance};
pub use envelope::{Request, RequestError, RequestErrorKind};
pub use epr::{Epr, SelectorSet};
pub use fault::{Fault, FaultKind, SelectorProblem};
pub use wql::{Condition, Query, WqlError};
pub use writer::{Instance, Item, ReplyHeader, Value};
pub use xml::{Attr, Element, Limits, XmlError};
