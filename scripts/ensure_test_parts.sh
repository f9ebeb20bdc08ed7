#!/usr/bin/env bash
# The real parts some tests need (tests/fixtures/parts.py): Debian's chromium for
# the UI test, git for the .gitignore test, redis-server for the Celery test,
# mount(8) and root for the tmpfs disk-full tests. Installs what is missing when root with apt-get; otherwise
# warns: those tests then skip locally and fail under CI=true.
set -eu
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v git >/dev/null || missing+=(git)
command -v mount >/dev/null || missing+=(mount)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: ${missing[*]} missing and cannot apt-get install; the tests needing them" \
      "will skip (fail under CI=true)" >&2
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "warning: not root: the tmpfs disk-full tests will skip (fail under CI=true)" >&2
fi
