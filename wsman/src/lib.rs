//! The WS-Management protocol layer: parsing requests and writing responses exactly as
//! WinRM does, with no knowledge of Hyper-V replication (that lives in `replica-core`).
//!
//! - [`xml`]: a small owned element tree resolved to namespace URIs, with hard limits.
//! - [`envelope`]: the SOAP envelope and WS-Addressing / WS-Management headers.
//! - [`body`]: Enumerate, Pull, Release and method-input bodies.
//! - [`cimxml`]: embedded CIM-XML instances passed as string parameters.
//! - [`wql`]: the WQL subset clients send in enumeration filters.
//! - [`writer`]: response envelopes with WinRM's prefixes.
//! - [`fault`]: SOAP faults with WinRM's codes and texts.
//!
//! The HTTP server calls [`envelope::Request::parse`], dispatches on the action, and answers
//! with a `writer` function or a [`fault::Fault`] (always HTTP 500).

pub mod body;
pub mod cimxml;
pub mod dom;
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
pub use epr::Epr;
pub use fault::{Fault, FaultKind, SelectorProblem};
pub use wql::{Condition, Query, WqlError};
pub use writer::{Instance, Item, ReplyHeader, Value};
pub use xml::{Attr, Element, Limits, XmlError};
