//! Parses a request body N times: `valgrind --tool=callgrind` on it gives the parser's
//! instructions per request without the server around it.
//!
//!     cargo run --release -p replica-wsman --example parse_loop -- bench/requests/get.xml 1000

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), n) = (args.next(), args.next()) else {
        eprintln!("usage: parse_loop FILE [N]");
        std::process::exit(2);
    };
    let n: usize = n.and_then(|n| n.parse().ok()).unwrap_or(1000);
    let Ok(body) = std::fs::read(&path) else {
        eprintln!("cannot read {path}");
        std::process::exit(2);
    };
    let mut ok = 0usize;
    for _ in 0..n {
        ok += usize::from(
            replica_wsman::envelope::Request::parse(std::hint::black_box(&body)).is_ok(),
        );
    }
    println!("{ok} of {n} parsed");
}
