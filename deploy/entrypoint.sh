#!/bin/sh
# The same commands `make run` uses (scripts/run_all.py), picked by the first argument.
set -eu
process=${1:?usage: api|worker SERVICE, or migrate [upgrade SERVICE]}
case "$process" in
  api)
    # uvicorn's command line; the supervisor deals connections to --workers in turn (shared/serve.py).
    exec python -m shared.serve --factory "services.${2:?service}.main:create_app" --host 0.0.0.0 --port "${PORT:-8000}" \
      --workers "${SALESLINE_API_WORKERS:-2}" --proxy-headers
    ;;
  worker)
    exec python -m "services.${2:?service}.worker"
    ;;
  migrate)
    # `migrate` alone: every service; `migrate upgrade orders`: one service (compose, Kubernetes).
    shift
    exec python -m shared.migrate "$@"
    ;;
  gateway-config)
    # The gateway's nginx.conf and ops page (compose, Kubernetes), from this image's routers.
    # gateway-config [DIR [API_PORT]]: compose's APIs listen on 8000, Kubernetes Services on 80.
    exec python -m deploy.gateway render --dir "${2:-/gateway}" --upstream-port "${3:-8000}"
    ;;
  *)
    echo "unknown process '$process': use api SERVICE, worker SERVICE, migrate or gateway-config" >&2
    exit 64
    ;;
esac
