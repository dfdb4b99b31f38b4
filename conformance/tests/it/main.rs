//! Integration tests of replica-conformance against a real simulator over HTTP: the scenario
//! suite, record and replay, explore (green, and red on a simulator made to diverge), the
//! real-host guard, and the built binary. One test binary (`[[test]] name = "it"`).

mod auth;
mod common;
mod explore;
mod lab;
mod labsim;
mod real;
mod replay;
mod run;
