//! The scenario suite against a simulator that offers Negotiate only (`serve --auth
//! negotiate`, as a Windows host with Basic off): the runner's client authenticates with NTLM
//! inside SPNEGO and seals every message; and against one that offers Basic only, where `auto`
//! falls back to Basic.

use std::sync::Arc;

use replica_client::wsman::{
    AuthMethod, ClientOptions, Credentials, ResponseError, WsmanClient, WsmanError,
};
use replica_conformance::target::{Target, TargetSpec};
use replica_sim::AuthSchemes;
use replica_sim::ClockMode;
use replica_sim::{Sim, SimConfig};

use crate::common::*;

async fn sim_offering(auth: &str) -> replica_sim::SimHandle {
    Sim::start_with(SimConfig {
        clock: ClockMode::Manual,
        auth: AuthSchemes::parse(auth).expect("schemes"),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn suite(sim: &replica_sim::SimHandle, auth: AuthMethod) -> Vec<String> {
    let opts = ClientOptions {
        auth,
        ..ClientOptions::default()
    };
    let target = Arc::new(
        Target::connect(&TargetSpec::Hosts(sim.hosts()), creds(), opts, 0)
            .await
            .expect("target connects"),
    );
    assert!(target.is_simulator());
    let reports = run(&target, None).await;
    assert!(!reports.is_empty());
    shutdown(target).await;
    failures(&reports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_a_negotiate_only_simulator() {
    let sim = sim_offering("negotiate").await;
    for auth in [AuthMethod::Negotiate, AuthMethod::Auto] {
        let bad = suite(&sim, auth).await;
        assert!(bad.is_empty(), "{auth:?} failures:\n{}", bad.join("\n"));
    }
    // Basic is refused there, with the schemes the host offers.
    let basic = ClientOptions {
        auth: AuthMethod::Basic,
        ..ClientOptions::default()
    };
    let c = WsmanClient::new(sim.url("HV-PRIMARY"), creds(), basic).expect("client");
    match c.identify().await {
        Err(WsmanError::Response(ResponseError::Unauthorized { www_authenticate })) => {
            assert_eq!(www_authenticate, vec!["Negotiate".to_string()]);
        }
        other => panic!("expected 401, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_basic_and_wrong_passwords_are_401_under_both() {
    let sim = sim_offering("basic").await;
    let c =
        WsmanClient::new(sim.url("HV-PRIMARY"), creds(), ClientOptions::default()).expect("client");
    assert!(c.identify().await.is_ok());
    sim.shutdown().await;
    let sim = sim_offering("basic,negotiate").await;
    for auth in [AuthMethod::Negotiate, AuthMethod::Basic] {
        let opts = ClientOptions {
            auth,
            ..ClientOptions::default()
        };
        let c = WsmanClient::new(
            sim.url("HV-PRIMARY"),
            Credentials::new("admin", "nope"),
            opts,
        )
        .expect("client");
        assert!(
            matches!(
                c.identify().await,
                Err(WsmanError::Response(ResponseError::Unauthorized { .. }))
            ),
            "{auth:?}"
        );
    }
    sim.shutdown().await;
}
