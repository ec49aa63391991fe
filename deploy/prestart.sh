#!/usr/bin/env bash
# Pre-start: wait for the database, then migrate it. Run before the API and the workers.
set -euo pipefail
GATEWAY="${GATEWAY_BIN:-gateway}"
for i in $(seq 1 60); do
  if python3 - <<'PY'
import os, sys
from sqlalchemy import text
from gateway.kit.db import make_engine
from gateway.settings import Settings
try:
    with make_engine(Settings().database_url).connect() as c:
        c.execute(text("SELECT 1"))
except Exception as exc:  # noqa: BLE001
    print(f"database not ready: {type(exc).__name__}", file=sys.stderr)
    sys.exit(1)
PY
  then break; fi
  [ "$i" = 60 ] && { echo "database never became ready" >&2; exit 1; }
  sleep 2
done
exec "$GATEWAY" db upgrade
