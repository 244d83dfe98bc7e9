# One-step set-up and the two jobs the README starts with:
#   make demo   the main job
#   make test   every check CI runs
# Both install what is missing first (system packages as root; otherwise they print the
# command to run).

CARGO ?= cargo

.PHONY: deps build demo test fmt-check clippy unit clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --locked --workspace

# Until `causeway up` exists, the main job checks the example policies.
demo: build
	$(CARGO) run --locked --quiet -- policy check examples/policies/

fmt-check:
	$(CARGO) fmt --all --check

clippy: deps
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --locked --workspace

test: deps fmt-check clippy unit

clean:
	$(CARGO) clean
