//! Crash safety of `serve --state-file`: the real binary, killed with SIGKILL at a random
//! moment while clients keep it saving, ten times over the same file. After every kill the
//! file is a complete state (the previous save or a newer one, never a torn mix), the next
//! start loads it, and its journal cursor never goes back.

use super::control::{APP01, REPLICA, WEB01, Wsman};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_replica-sim");
const ROUNDS: usize = 10;

/// Starts `serve --state-file FILE` and returns the child with its hosts' addresses.
fn start(file: &Path) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-file"])
        .arg(file)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("replica-sim starts");
    let line = super::support::read_ready_line(&mut child, 30);
    let ready: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no ready line ({e}): `{line}` (state file refused?)");
        }
    };
    let addr = |h: &str| -> SocketAddr {
        ready["hosts"][h]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("http://")
            .trim_end_matches("/wsman")
            .parse()
            .expect("address")
    };
    (child, addr("HV-PRIMARY"), addr(REPLICA))
}

/// The default world's journal cursor in a state file that must be complete: a torn write
/// does not parse (the restart after each kill proves the file valid as well).
fn journal_next(file: &Path, round: usize) -> u64 {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("round {round}: no state file: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("round {round}: torn or invalid state file: {e}"));
    v["worlds"]
        .as_array()
        .unwrap_or_else(|| panic!("round {round}: no worlds in the state file"))
        .iter()
        .find(|w| w["name"] == "default")
        .and_then(|w| w["journal_next"].as_u64())
        .unwrap_or(0)
}

/// What changes when a save lands: the inode (a rename), the length, the time.
fn file_id(file: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(file).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

/// A small xorshift: a different kill moment each round and each run.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_under_load_never_leaves_a_torn_state_file() {
    let dir = super::support::scratch_dir("crash");
    let file = dir.join("state.json");
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
        | 1;
    let mut last = 0u64;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (mut child, primary, replica) = start(&file);
        // The file exists as soon as the simulator is ready (written, or loaded and valid).
        let at_start = journal_next(&file, round);
        assert!(
            at_start >= last,
            "round {round}: journal cursor went back from {last} to {at_start}"
        );
        // Load: two clients changing the worlds (jobs, journal), so saves keep happening.
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = [(replica, REPLICA), (primary, "HV-PRIMARY")]
            .into_iter()
            .map(|(addr, host)| {
                let (stop, calls) = (stop.clone(), calls.clone());
                std::thread::spawn(move || {
                    // Six worlds: a bigger file, so a save takes a while to write.
                    let worlds: Vec<Wsman> = (0..6)
                        .map(|k| {
                            let mut w = Wsman::at(addr, host);
                            if k > 0 {
                                w.path = format!("/worlds/w{k}/wsman");
                            }
                            w
                        })
                        .collect();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let w = &worlds[(i % 6) as usize];
                        let ok = match i % 3 {
                            0 => w.service_call("InitiateFailover", WEB01).is_ok(),
                            1 => w.service_call("RevertFailover", APP01).is_ok(),
                            _ => w.wql("SELECT * FROM Msvm_ComputerSystem").is_ok(),
                        };
                        if !ok {
                            break;
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        // Aim at a save: time two of them landing (the file changes), then kill in the last
        // milliseconds before the next one lands, while it is being written.
        let landed = |since: Option<(u64, u64, std::time::SystemTime)>| {
            let deadline = Instant::now() + Duration::from_secs(3);
            while file_id(&file) == since && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(500));
            }
            (Instant::now(), file_id(&file))
        };
        let (_, id) = landed(file_id(&file));
        let (t1, id) = landed(id);
        let (t2, _) = landed(id);
        let period = (t2 - t1).clamp(Duration::from_millis(150), Duration::from_millis(400));
        let early = Duration::from_millis(next_random(&mut rng) % 25);
        std::thread::sleep((t2 + period).saturating_duration_since(Instant::now() + early));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.join();
        }
        assert!(calls.load(Ordering::Relaxed) > 0, "round {round}: no load");
        let after = journal_next(&file, round);
        assert!(
            after >= at_start,
            "round {round}: journal cursor went back from {at_start} to {after}"
        );
        last = after;
    }
    // Saves happened along the way, and the last file starts a simulator that goes on from
    // its cursor.
    assert!(last > 1, "nothing was ever saved");
    let (mut child, _, replica) = start(&file);
    let w = Wsman::at(replica, REPLICA);
    w.wql("SELECT * FROM Msvm_ComputerSystem")
        .expect("answers after the crashes");
    // The journal read as any user of the simulator reads it: replica-client's typed client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = replica_client::control::http_client(false).expect("HTTP client");
    let control = replica_client::control::Control::new(http, format!("http://{replica}"), None);
    let page = rt
        .block_on(control.journal_page(last - 1, 10_000))
        .expect("journal");
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![last], "{page:?}");
    drop(rt);
    // SIGTERM: a clean stop saves once more and leaves no temporary file.
    let pid = child.id().to_string();
    let _ = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .or_else(|_| {
            Command::new("sh")
                .args(["-c", &format!("kill -TERM {pid}")])
                .status()
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(journal_next(&file, ROUNDS) > last);
    // Temporary files of killed saves were cleared at start; only the state file is left.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("state.json")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started.elapsed() < Duration::from_secs(60));
}
