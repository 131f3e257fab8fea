# Everyday commands. Each is a thin wrapper over `cargo xtask`, which needs nothing but cargo.

# List the recipes.
default:
    @just --list

# Build everything and run the factorise example on 2 local workers.
demo:
    cargo xtask demo

# Build the guests and run every test.
test *ARGS:
    cargo xtask test {{ARGS}}

# The deterministic simulator of the scheduling core (--seeds N, --seed S to replay one).
sim *ARGS:
    cargo xtask sim {{ARGS}}

# Build every guest crate for wasm32-unknown-unknown.
build-guests:
    cargo xtask build-guests

# cargo fmt --check and clippy with -D warnings.
lint:
    cargo xtask lint

# Run the benchmarks (tiny, chained, factorise and pi against native, bytes, memory) as a table.
bench *ARGS:
    cargo xtask bench {{ARGS}}

# The benchmarks, then the same workloads on Ray and Dask (installed into a venv), side by side.
bench-peers *ARGS:
    cargo xtask bench-peers {{ARGS}}

# One server against 1,000 then 5,000 simulated workers, 200,000 tasks (--quick: 50 workers).
bench-scale *ARGS:
    cargo xtask bench-scale {{ARGS}}

# Static release archives of dipla-worker and dipla-server (x86_64 musl) in target/dist.
dist:
    cargo xtask dist

# The worker's Debian package in target/dist (--musl: the static binary; --binary PATH).
deb *ARGS:
    cargo xtask deb {{ARGS}}

# Render the Mandelbrot set on local workers into a PNG (--out, --width, --height, --bands).
mandelbrot *ARGS:
    cargo xtask build-guests
    cargo run --release -p dipla-examples --bin mandelbrot -- {{ARGS}}

# Fuzz the protocol decoders and the manifest parser with 100 times the cases CI runs.
fuzz:
    PROPTEST_CASES=200000 cargo test --release -p dipla-protocol --test fuzz
    PROPTEST_CASES=50000 cargo test --release -p dipla-server --test manifest_fuzz
