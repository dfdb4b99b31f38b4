# replica-sim in a container: the simulated Hyper-V hosts on 5985 (HV-PRIMARY) and 5987
# (HV-REPLICA), plus the control API and the live page on the same ports.
#
#   docker build -t replica-sim .
#   docker run --rm -p 5985:5985 -p 5987:5987 replica-sim
#   docker run --rm -p 5985:5985 -p 5987:5987 replica-sim --clock manual --seed 7
#
# Arguments after the image name are appended to `replica-sim serve --listen 0.0.0.0:5985`.
# NOTE: this file is not built by the project's CI: the build machines have no Docker engine.
# It uses only what `cargo build --release -p replica-sim` needs (pure Rust, no C libraries).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo needs every member's manifest to resolve Cargo.lock.
COPY . .
RUN cargo build --release --locked -p replica-sim \
 && install -D -m 0755 target/release/replica-sim /out/replica-sim

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin replica
COPY --from=build /out/replica-sim /usr/local/bin/replica-sim
USER replica
# One port per simulated host: the first host takes --listen's port, the next ones follow.
EXPOSE 5985 5987
# Listening on every interface is what a container needs; the simulator warns about it on
# stderr, because anyone who can reach the ports can drive it (Basic auth admin:admin by
# default: pass --credentials USER:PASS and --control-token TOKEN on shared networks).
ENTRYPOINT ["replica-sim", "serve", "--listen", "0.0.0.0:5985"]
