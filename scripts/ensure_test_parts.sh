#!/usr/bin/env bash
# The UI test drives Debian's chromium; install it when it is missing.
set -eu
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "warning: /usr/bin/chromium missing and cannot apt-get install it; the UI test will be skipped" >&2
fi
