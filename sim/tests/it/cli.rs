//! The `replica-sim` command line as a new user meets it: options refused at start with a
//! clear message (exit 2), and what the ready line and the log say.

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
