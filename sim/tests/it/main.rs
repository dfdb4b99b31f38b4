//! replica-sim's integration tests: one binary, one module per area, each against a simulator
//! started in-process on loopback port 0.

mod raw;
mod support;

mod auth;
mod budget;
mod cli;
mod control;
mod crash;
mod demo;
mod docs;
mod http;
mod limits;
mod persist;
mod race;
mod real_host;
mod tls;
mod ui;
mod wire;
