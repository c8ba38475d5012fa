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
