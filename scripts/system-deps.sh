#!/usr/bin/env bash
# Installs the Debian packages glimpse needs, only when one is missing.
# `system-deps.sh test` adds what the tests use: espeak-ng makes speech clips,
# chromium runs the web page tests, prometheus brings promtool (alert rule unit tests).
set -euo pipefail
# openssl makes the certificates that close SeaweedFS's master and gRPC ports (docs/security.md)
# tesseract-ocr + -eng: the OCR language data (and the CLI to try it by hand; the engine
# itself comes in the tesserocr wheel); wamerican: the word list OCR keeps words by
needed=(libmagic1 openssl tesseract-ocr tesseract-ocr-eng wamerican)
if [ "${1:-}" = "test" ]; then
  needed+=(espeak-ng chromium prometheus)
fi
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "==> installing system packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
