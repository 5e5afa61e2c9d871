#!/usr/bin/env bash
# Spark (the training half) needs a Java runtime. Install Debian's OpenJDK 17 when missing.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  exit 0
fi
echo "java not found: installing openjdk-17-jre-headless" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install a Java 17 runtime and put it on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
java -version
