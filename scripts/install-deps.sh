#!/usr/bin/env bash
# Installs what building and testing Causeway needs on Debian or Ubuntu: the system
# packages below and the rustfmt/clippy components. Idempotent and quick when all is
# present. As root it installs; otherwise it prints the exact command and fails, unless
# CAUSEWAY_SKIP_SYSTEM_DEPS=1 says to go on without them.
set -euo pipefail

# nftables capture (libnftnl, libmnl, pkg-config to find them; nft as a test oracle),
# network-namespace testbeds (iproute2); the benchmarks' loads and baselines: dnsperf and
# dnsmasq (as dnsmasq-base: the bare binary, without the `dnsmasq` package's system
# service that would start a daemon on port 53), haproxy, wrk, and h2load (in
# nghttp2-client) for the HTTP/2 benchmark.
PACKAGES=(libnftnl-dev libmnl-dev pkg-config nftables iproute2 dnsperf dnsmasq-base haproxy wrk nghttp2-client)

say() { printf 'install-deps: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is not installed; install Rust from https://rustup.rs and run this again"
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      rustup component add "$component"
    else
      say "cargo ${component/rustfmt/fmt} is missing and rustup is not there to add it"
      exit 1
    fi
  fi
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  say "not a Debian-based system: install the equivalents of ${PACKAGES[*]} yourself"
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CAUSEWAY_SKIP_SYSTEM_DEPS:-}" = 1 ]; then
    say "going on without ${missing[*]} (CAUSEWAY_SKIP_SYSTEM_DEPS=1)"
    exit 0
  fi
  say "missing system packages: ${missing[*]}"
  say "install them with:"
  printf '\n    sudo apt-get update && sudo %s\n\n' "$install" >&2
  say "or set CAUSEWAY_SKIP_SYSTEM_DEPS=1 to go on without them"
  exit 1
fi

say "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Packages with a daemon (haproxy) must not leave one running: the benchmarks start
# their own, on loopback. Unless the machine already has a policy (containers usually
# deny every start), deny service starts for the length of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Written by causeway scripts/install-deps.sh for one install.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
no_daemons() {
  # Started anyway (or at the next boot): stop and disable it where systemd runs.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now haproxy.service >/dev/null 2>&1 || true
  fi
}

for attempt in 1 2 3; do
  if apt-get update -qq && $install >/dev/null; then
    no_daemons
    exit 0
  fi
  say "apt-get failed (attempt $attempt of 3); retrying"
  sleep $((attempt * 5))
done
say "could not install ${missing[*]}"
exit 1
