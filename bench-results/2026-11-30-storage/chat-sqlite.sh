#!/bin/sh
# chat-mio-server on SQLite (the default store) in a fresh data directory per run.
d=$(mktemp -d /tmp/chat-bench-data.XXXXXX)
exec /tmp/chat-mio-bin --data-dir "$d" "$@"
