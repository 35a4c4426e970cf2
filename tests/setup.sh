#!/bin/sh
# Installs what the test suite needs on a fresh Debian 12 machine (run as root), then the Python venv.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2046
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends \
    $(sed -e 's/#.*//' tests/apt-packages.txt | tr -s ' \n' ' ')
# tests/browser/test_speedscope_app.py runs `npm pack speedscope`. These machines' Node.js (NodeSource's nodejs)
# bundles npm and conflicts with Debian's npm package: install Debian's only where no npm exists.
command -v npm >/dev/null 2>&1 || apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends npm
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
