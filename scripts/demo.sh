#!/usr/bin/env bash
# The short demo `make up` ends with: shows that the stack answers, using .esteira/env.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set -a; source "$root/.esteira/env"; set +a

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "curl $ESTEIRA_API_URL/healthz"
curl -fsS "$ESTEIRA_API_URL/healthz"; echo
step "curl -H 'Authorization: Bearer \$ESTEIRA_ADMIN_TOKEN' $ESTEIRA_API_URL/v1/whoami"
curl -fsS -H "Authorization: Bearer $ESTEIRA_ADMIN_TOKEN" "$ESTEIRA_API_URL/v1/whoami"; echo
step "curl $ESTEIRA_API_URL/v1/whoami   # no token"
curl -sS "$ESTEIRA_API_URL/v1/whoami"; echo

auth=(-H "Authorization: Bearer $ESTEIRA_ADMIN_TOKEN")
step "curl -X POST $ESTEIRA_API_URL/v1/jobs -d '{\"kind\": \"noop\", \"payload\": {\"sleep_ms\": 200}}'"
job=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -X POST "$ESTEIRA_API_URL/v1/jobs" \
  -d '{"kind": "noop", "payload": {"sleep_ms": 200}, "idempotency_key": "demo-'"$(date +%s)"'"}')
echo "$job"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
# poll_until PATH FIELD VALUE: reads PATH until its FIELD is VALUE (10 s at most); prints the last value.
poll_until() {
  local value=""
  for _ in $(seq 1 50); do
    value=$(curl -fsS "${auth[@]}" "$ESTEIRA_API_URL$1" | field "$2")
    [ "$value" = "$3" ] && break
    sleep 0.2
  done
  echo "$value"
}
id=$(field id <<<"$job")
status=$(poll_until "/v1/jobs/$id" status completed)
step "curl $ESTEIRA_API_URL/v1/jobs/$id   # run by the processor"
curl -fsS "${auth[@]}" "$ESTEIRA_API_URL/v1/jobs/$id"; echo
[ "$status" = completed ] || { echo "the demo job is '$status', not completed: see .esteira/logs/processor.log" >&2; exit 1; }
step "curl -X POST $ESTEIRA_API_URL/v1/jobs -d '{\"kind\": \"nope\"}'   # a bad request"
curl -sS "${auth[@]}" -X POST "$ESTEIRA_API_URL/v1/jobs" -d '{"kind": "nope"}'; echo
step "curl -X POST $ESTEIRA_API_URL/v1/batches -d '{\"jobs\": [{\"kind\": \"noop\", \"payload\": {\"fan_out\": 20}}], \"on_complete\": {\"kind\": \"noop\"}}'"
batch=$(curl -fsS "${auth[@]}" -X POST "$ESTEIRA_API_URL/v1/batches" \
  -d '{"description": "demo", "jobs": [{"kind": "noop", "payload": {"fan_out": 20, "sleep_ms": 50}}], "on_complete": {"kind": "noop"}}')
bid=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["batch"]["id"])' <<<"$batch")
state=$(poll_until "/v1/batches/$bid" state succeeded)
step "curl $ESTEIRA_API_URL/v1/batches/$bid   # one job fanned out 20 more; the callback ran once"
curl -fsS "${auth[@]}" "$ESTEIRA_API_URL/v1/batches/$bid" | python3 -c '
import json, sys
b = json.load(sys.stdin)
print(json.dumps({k: b.get(k) for k in ("state", "total", "completed", "percent", "complete_job_id")}))'
[ "$state" = succeeded ] || { echo "the demo batch is '$state', not succeeded: see .esteira/logs/processor.log" >&2; exit 1; }
step "curl -X POST $ESTEIRA_API_URL/v1/jobs -d '{\"kind\": \"noop\", \"payload\": {\"fail\": \"permanent\"}}'   # a job that fails for good"
dead=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -X POST "$ESTEIRA_API_URL/v1/jobs" \
  -d '{"kind": "noop", "payload": {"fail": "permanent", "demo": true}}' | field id)
status=$(poll_until "/v1/jobs/$dead" status dead)
echo "job $dead is $status: its dead letter is on the dashboard's Dead letters page, ready to requeue"
