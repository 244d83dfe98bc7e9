# One-step set-up and the two jobs the README starts with:
#   make demo   the main job
#   make test   every check CI runs
# Both install what is missing first (system packages as root; otherwise they print the
# command to run).

CARGO ?= cargo

.PHONY: deps build demo tour bench bench-ci bench-full benchmarks-md test fmt-check clippy unit clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --locked --workspace

# The main job: the quick start, a cloud node and two edge sites on this machine, until
# Ctrl-C. Release build: it is what a user runs.
demo: deps
	$(CARGO) run --release --locked --quiet -- up

# The quick start's scripted tour: exits 0 only when every check held.
tour: deps
	$(CARGO) run --locked --quiet -- up --tour

# The mesh's comparisons, each against its baseline in the same run (a few minutes;
# see docs/benchmarks.md): proxy vs HAProxy and direct, DNS vs dnsmasq, memory, and
# per-request HTTP vs direct, HAProxy in HTTP mode and h2load.
bench: deps
	$(CARGO) build --release --locked --quiet
	./target/release/causeway bench --profile full --out target/bench-report/full
	./target/release/causeway bench proxy
	./target/release/causeway bench dns
	./target/release/causeway bench memory
	./target/release/causeway bench http

# The load-balancing properties CI guards (loadtests/scenarios/, bounds in
# loadtests/thresholds.yaml): round-robin shares, rate-limit accuracy, PeakEwma against a
# slow endpoint, failover and recovery, hash stickiness. A few minutes; exits 1 when a
# property broke. The debug build is enough: every gate is a ratio or a share.
bench-ci: deps
	$(CARGO) run --locked --quiet -- bench --profile ci --out target/bench-report/ci

# Every scenario at full length, with the comparisons against direct and HAProxy; the
# report with its plots goes to target/bench-report/full (BENCHMARKS.md holds the last).
bench-full: deps
	$(CARGO) build --release --locked --quiet
	./target/release/causeway bench --profile full --out target/bench-report/full

# bench-full, published: BENCHMARKS.md and its plots under docs/bench-report/.
benchmarks-md: deps
	./scripts/publish-benchmarks.sh

fmt-check:
	$(CARGO) fmt --all --check

clippy: deps
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --locked --workspace

test: deps fmt-check clippy unit tour bench-ci

clean:
	$(CARGO) clean
