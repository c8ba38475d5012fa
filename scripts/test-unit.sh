#!/usr/bin/env bash
# make test-unit: the tests that need no RabbitMQ, PostgreSQL or service (Tests/UnitTests),
# for a fast loop while working on parsers, policies, workloads and handlers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"
install_debs librabbitmq-dev libpq-dev libcurl4-openssl-dev pkg-config
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
say "building tests"
swift build --build-tests 2>&1 | tail -n 3
say "running the unit tests"
swift test --skip-build --filter UnitTests
