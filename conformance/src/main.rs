//! `replica-conformance`: see `replica_conformance::cli`.

fn main() -> std::process::ExitCode {
    let code = replica_conformance::cli::main_with(std::env::args_os());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
