//! `serve --as-real-host`: only `/wsman` of the default world answers; every other path (the
//! control API, `/worlds/…`, the live page) is HTTP.sys' 404 page, as on a Windows host, and a
//! world header is ignored (WinRM does not know it).

use crate::support::*;

#[tokio::test]
async fn a_real_host_shows_nothing_of_the_double() {
    within(20, async {
        let sim = start_with(replica_sim::SimConfig {
            as_real_host: true,
            ..config()
        })
        .await;
        let base = sim.base("HV-PRIMARY");
        for path in [
            "/_replica/v1/health",
            "/_replica/v1/worlds",
            "/_replica/ui",
            "/worlds/w/wsman",
            "/worlds/w/_replica/v1/health",
            "/",
        ] {
            let r = post(&format!("{base}{path}"), &[], b"{}").await;
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.header("server"), Some("Microsoft-HTTPAPI/2.0"), "{path}");
            assert!(
                r.body
                    .contains("HTTP Error 404. The requested resource is not found.")
            );
        }
        let r = Client::new(sim.url("HV-PRIMARY"))
            .send_with(&identify_body(), &[("X-Replica-World", "elsewhere")])
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("Microsoft Corporation"));
        assert!(
            !sim.worlds().iter().any(|n| n == "elsewhere"),
            "a world header must not reach a world"
        );
    })
    .await;
}
