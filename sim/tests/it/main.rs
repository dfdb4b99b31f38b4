//! replica-sim's integration tests: one binary, one module per area, each against a simulator
//! started in-process on loopback port 0.

mod support;

mod control;
mod demo;
mod docs;
mod http;
mod persist;
mod ui;
mod wire;
