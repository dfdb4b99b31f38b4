//! The Rust example README.md quotes: one simulator per test, in-process, on port 0. The
//! "client under test" is a raw WS-Management POST here; in your tests it is your own code.

use replica_sim::state::ClockMode;
use replica_sim::{Sim, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request with Basic admin:admin; returns the whole response as text.
async fn http(method: &str, base: &str, path: &str, body: &str) -> std::io::Result<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    // WS-Management takes SOAP; the control API takes JSON only (it refuses other bodies).
    let content_type = if path.starts_with("/_replica/") {
        "application/json"
    } else {
        "application/soap+xml;charset=UTF-8"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_example_unplanned_failover_in_process() -> anyhow::Result<()> {
    // Port 0: every host on a free loopback port. A manual clock: jobs end when the test says.
    let sim = Sim::start(SimConfig {
        clock: ClockMode::Manual,
        seed: 7,
        ..SimConfig::default()
    })
    .await?;
    let replica = sim.base("HV-REPLICA"); // http://127.0.0.1:PORT (WS-Management at /wsman)

    let v2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2";
    let envelope = format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
             xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
             xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:To>{replica}/wsman</a:To>
    <w:ResourceURI s:mustUnderstand="true">{v2}/Msvm_ReplicationService</w:ResourceURI>
    <a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
    <a:Action s:mustUnderstand="true">{v2}/Msvm_ReplicationService/InitiateFailover</a:Action>
    <a:MessageID>uuid:6F1E2D3C-0000-4000-8000-000000000001</a:MessageID>
    <w:SelectorSet>
      <w:Selector Name="CreationClassName">Msvm_ReplicationService</w:Selector>
      <w:Selector Name="Name">replicasvc</w:Selector>
      <w:Selector Name="SystemCreationClassName">Msvm_ComputerSystem</w:Selector>
      <w:Selector Name="SystemName">HV-REPLICA</w:Selector>
    </w:SelectorSet>
  </s:Header>
  <s:Body>
    <p:InitiateFailover_INPUT xmlns:p="{v2}/Msvm_ReplicationService">
      <p:ComputerSystem>
        <a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
        <a:ReferenceParameters>
          <w:ResourceURI>{v2}/Msvm_ComputerSystem</w:ResourceURI>
          <w:SelectorSet>
            <w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector>
            <w:Selector Name="Name">6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02</w:Selector>
          </w:SelectorSet>
        </a:ReferenceParameters>
      </p:ComputerSystem>
    </p:InitiateFailover_INPUT>
  </s:Body>
</s:Envelope>"#
    );
    let answer = http("POST", &replica, "/wsman", &envelope).await?;
    assert!(
        answer.contains("<p:ReturnValue>4096</p:ReturnValue>"),
        "{answer}"
    );

    // Let the job finish, then read the world through the control API.
    http(
        "POST",
        &replica,
        "/_replica/v1/clock",
        r#"{"advance_ms": 5000}"#,
    )
    .await?;
    let state = http("GET", &replica, "/_replica/v1/state", "").await?;
    assert!(state.contains(r#""name":"Recovered""#), "{state}"); // web-01 on HV-REPLICA is now 5

    sim.shutdown().await;
    Ok(())
}
