#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/test_report.py (the report opened in a browser).
# Debian/Ubuntu, run as root; does nothing when both are already there. Prints the two paths.
#
#   scripts/install_chromium.sh
#
# Environment: CHROMIUM (default: the first of chromium, chromium-browser on PATH), CHROMEDRIVER
# (default: chromedriver on PATH) name binaries installed elsewhere.
set -euo pipefail

say() { printf 'install_chromium: %s\n' "$*"; }

find_bins() {
    BROWSER=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
    DRIVER=${CHROMEDRIVER:-$(command -v chromedriver || true)}
}

find_bins
if [[ -z $BROWSER || -z $DRIVER ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        say "chromium or chromedriver missing and not root: run 'apt-get install chromium chromium-driver' as root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        say "chromium or chromedriver missing and no apt-get: install Chromium and its chromedriver" >&2
        exit 1
    fi
    say "installing chromium and chromium-driver (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
    find_bins
fi
if [[ -z $BROWSER || -z $DRIVER ]]; then
    say "chromium or chromedriver still missing after apt-get" >&2
    exit 1
fi
say "chromium: $BROWSER"
say "chromedriver: $DRIVER"
