#!/usr/bin/env bash
# The Kubernetes recipe (deploy/kubernetes): validates every manifest, strictly, against the
# Kubernetes schemas kubernetes-validate (PyPI) carries, and checks that every executable has
# its Deployment with probes, requests, a PodDisruptionBudget, and the processors their
# autoscaler (Tests/Kubernetes/check_manifests.py). No cluster is needed. make test runs it.
# ESTEIRA_KUBERNETES_VERSION (default 1.30.0): the Kubernetes version validated against.
# The last line is "kubernetes: passed|failed, ..."; the exit code is the checker's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"
VENV="$ESTEIRA_ROOT/.build/kubernetes-venv"
python_venv "$VENV" "kubernetes-validate==1.37.0"
"$VENV/bin/python" Tests/Kubernetes/check_manifests.py "$ESTEIRA_ROOT" "${ESTEIRA_KUBERNETES_VERSION:-1.30.0}"
