//! The `replica-sim` command line as a new user meets it: options refused at start with a
//! clear message (exit 2), and what the ready line and the log say.

use serde_json::Value as Json;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_replica-sim");

/// Runs `replica-sim ARGS` to its end; for commands that refuse to start (a started server
/// would run until killed).
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("replica-sim runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_empty_or_blank_control_token_is_refused_at_start() {
    for token in ["", "   ", " s3cret"] {
        let o = run(&["serve", "--listen", "127.0.0.1:0", "--control-token", token]);
        assert_eq!(o.status.code(), Some(2), "{token:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--control-token"),
            "{token:?}: {}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "no ready line for {token:?}");
    }
}

/// Starts `replica-sim serve ARGS` on port 0 with `env`, hands its ready line to `during`,
/// stops it with SIGTERM and returns everything it logged.
fn serve_logged(args: &[&str], env: &[(&str, &str)], during: impl FnOnce(&Json)) -> String {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replica-sim starts");
    let line = super::support::read_ready_line(&mut child, 30);
    let ready: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
    if ready.is_object() {
        during(&ready);
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let out = child.wait_with_output().expect("replica-sim stops");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(ready.is_object(), "no ready line: `{line}`; log:\n{log}");
    log
}

/// `http://127.0.0.1:PORT/wsman` → the socket address.
fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches("/wsman")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn the_log_has_no_colour_codes_when_stderr_is_not_a_terminal() {
    let log = serve_logged(&["--listen", "127.0.0.1:0"], &[], |_| {});
    assert!(log.contains("simulator ready"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a piped log:\n{log}");
}

#[test]
fn a_refused_password_leaves_a_debug_line_without_the_secret() {
    let log = serve_logged(
        &["--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "replica_sim=debug")],
        |ready| {
            let addr = addr_of(ready["hosts"]["HV-PRIMARY"].as_str().unwrap_or_default());
            // admin:wrong-pass
            let r = crate::raw::blocking(
                addr,
                "POST",
                "/wsman",
                &[("Authorization", "Basic YWRtaW46d3JvbmctcGFzcw==")],
                b"",
            )
            .expect("an HTTP answer");
            assert_eq!(r.status, 401, "{}", r.text());
        },
    );
    let line = log
        .lines()
        .find(|l| l.contains("request") && l.contains("/wsman"))
        .unwrap_or_else(|| panic!("no request line at debug:\n{log}"));
    for part in [
        "POST",
        "status=401",
        "basic user=admin",
        "auth_ok=false",
        "micros=",
    ] {
        assert!(line.contains(part), "`{part}` not in `{line}`");
    }
    assert!(
        !log.contains("wrong-pass") && !log.contains("YWRtaW46"),
        "{log}"
    );
}

#[test]
fn listen_takes_a_host_name() {
    serve_logged(&["--listen", "localhost:0"], &[], |ready| {
        let url = ready["hosts"]["HV-PRIMARY"].as_str().unwrap_or_default();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    });
    for (arg, says) in [
        ("localhost", "has no port"),
        ("localhost:http", "is not a number"),
        (
            "no-such-host.invalid:5985",
            "cannot resolve `no-such-host.invalid`",
        ),
        ("[::1:5985", "brackets"),
    ] {
        let o = run(&["serve", "--listen", arg]);
        assert_eq!(o.status.code(), Some(2), "{arg}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{arg}: {}", stderr(&o));
    }
}

#[test]
fn an_existing_state_file_wins_and_the_ignored_options_are_named() {
    let dir = super::support::scratch_dir("cli-state-wins");
    let file = dir.join("state.json");
    let file = file.to_str().expect("utf-8 path");
    // The first start writes the file at once.
    let first = serve_logged(
        &[
            "--listen",
            "127.0.0.1:0",
            "--state-file",
            file,
            "--seed",
            "3",
        ],
        &[],
        |_| {},
    );
    assert!(
        !first.contains("ignored"),
        "nothing to ignore on a new file:\n{first}"
    );
    let log = serve_logged(
        &[
            "--listen",
            "127.0.0.1:0",
            "--state-file",
            file,
            "--seed",
            "5",
            "--clock",
            "manual",
        ],
        &[],
        |_| {},
    );
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("ignored"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(line.contains("--seed, --clock"), "{line}");
    assert!(!line.contains("--topology"), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn state_file_errors_name_the_right_path_once_with_their_cause() {
    let dir = super::support::scratch_dir("cli-state-errors");
    let missing_dir = dir.join("nope");
    let truncated = dir.join("truncated.json");
    std::fs::write(&truncated, br#"{"format":"#).expect("write");
    let cases = [
        (
            missing_dir.join("state.json"),
            missing_dir.display().to_string(),
            "does not exist",
        ),
        (dir.clone(), dir.display().to_string(), "is a directory"),
        // A device: saving would rename a regular file over it.
        (
            std::path::PathBuf::from("/dev/null"),
            "/dev/null".to_string(),
            "not a regular file",
        ),
        (
            truncated.clone(),
            truncated.display().to_string(),
            "EOF while parsing",
        ),
    ];
    for (file, blamed, cause) in cases {
        let file = file.to_str().expect("utf-8 path");
        let o = run(&["serve", "--listen", "127.0.0.1:0", "--state-file", file]);
        let err = stderr(&o);
        let line = err
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or_default();
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        assert!(
            line.contains(&blamed),
            "{file}: `{line}` does not name {blamed}"
        );
        assert_eq!(line.matches(cause).count(), 1, "{file}: `{line}`");
    }
    let _ = std::fs::remove_dir_all(dir);
}
