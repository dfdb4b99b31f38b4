//! `replica-sim`: the command line lives in the library (`replica_sim::cli`).

/// The server allocates many small strings per request (parsed names, response text);
/// mimalloc serves them several times faster than glibc's malloc (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    replica_sim::cli::main()
}
