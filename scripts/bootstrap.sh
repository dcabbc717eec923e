#!/usr/bin/env bash
# Installs what is missing on a fresh Debian 12 machine (apt packages, npm packages) and
# builds everything. Idempotent and quiet when everything is already there. Needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools for the BPF objects and the addon, the real peers the lab and tests use, and the
# headless chromium the UI tests and benchmark drive (through playwright-core: no browser download).
APT_PACKAGES=(
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool linux-libc-dev make g++ python3
  iproute2 iptables nftables curl bind9-dnsutils dnsmasq nginx-light socat netcat-openbsd
  iperf3 wrk containernetworking-plugins knot-dnsutils dnsperf iputils-ping procps prometheus etcd-server openssl
  librdkafka-dev kcat
  nghttp2-client haproxy
  chromium fonts-dejavu-core
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install` (not `npm ci`) because npm here leaves other platforms' optional packages out of
# the lockfile, which `npm ci` then rejects; the lockfile still pins every version.
# npm builds re2 from source (no prebuilt download here): point node-gyp at the Node headers
# already on the machine instead of downloading them.
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
if ! npm ls --depth=0 >/dev/null 2>&1; then
  echo "bootstrap: installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
fi

npm run -s build
