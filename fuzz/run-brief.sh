#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a few seconds: the CI smoke run.
#
#   fuzz/run-brief.sh            # 20 s per target, with AddressSanitizer
#   fuzz/run-brief.sh 300        # 5 min per target
#   FUZZ_SANITIZER=none fuzz/run-brief.sh 60   # without AddressSanitizer: what CI runs
#
# .ci/run runs the last line, after clippy, with CARGO_TARGET_DIR set to
# $CARGO_TARGET_DIR/fuzz (outside the clone; cargo fuzz builds wherever CARGO_TARGET_DIR
# points, fuzz/target/ without it), and skips it when the nightly toolchain is missing.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz
# when it is missing. Exits non-zero when any target crashes (a panic, a 5xx, a 4xx that
# is not JSON, a timeout or memory over the limit); the input is left in
# fuzz/artifacts/<target>/. New corpus entries go to a temporary directory, so the small
# committed seeds in fuzz/corpus/ stay as they are.
set -euo pipefail

seconds="${1:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

# The fuzz workspace has its own Cargo.lock; a build must not change it behind CI's back
# (cargo fuzz build has no --locked of its own).
if ! cargo +nightly metadata --locked --format-version 1 >/dev/null; then
    echo "fuzz/Cargo.lock is out of date: run 'cargo +nightly metadata --format-version 1' in fuzz/ and commit the lock file" >&2
    exit 1
fi
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -s "$sanitizer"

# The bundled SQLite defines two file-local `aiOff` tables, which AddressSanitizer's
# one-definition-rule check reports as a violation although they are distinct statics.
# (cargo-fuzz 0.13.2 adds it itself with -s address as well.)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $targets; do
    echo "=== $target: ${seconds} s"
    mkdir -p "$scratch/$target"
    # -rss_limit_mb: "bounded memory"; -timeout: no input may take 10 s.
    if ! cargo +nightly fuzz run -s "$sanitizer" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all fuzz targets ran ${seconds} s each without a crash"
