"""Checks the Kubernetes recipe in deploy/kubernetes: every manifest validates (strictly)
against the Kubernetes schemas of kubernetes-validate, the operators' resources
(RabbitmqCluster, CloudNativePG's Cluster) are the only ones without a schema there, and every
executable in Services/ has a Deployment with its image, probes on /healthz, resource
requests, the database and broker URLs, and a PodDisruptionBudget; the processors have a
HorizontalPodAutoscaler on queue depth. Prints one line per problem and a last line
"kubernetes: passed|failed, ..."; exits 1 on any problem.
Usage: python3 check_manifests.py REPOSITORY_ROOT KUBERNETES_VERSION"""
import os, subprocess, sys
import yaml

root, version = sys.argv[1], sys.argv[2]
folder = os.path.join(root, "deploy", "kubernetes")
files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".yaml"))
problems = []

# The schemas: strict, so an unknown field is an error too.
run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"), "--strict", "--quiet",
                      "-k", version, *files], capture_output=True, text=True)
lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
operators = {("rabbitmq.com/v1beta1", "RabbitmqCluster"), ("postgresql.cnpg.io/v1", "Cluster")}
for line in lines:
    if line.startswith("WARN") and any(f"kind {k} with api version {a} " in line for a, k in operators):
        continue
    problems.append(line)
if run.returncode != 0 and not problems:
    problems.append(f"kubernetes-validate exited {run.returncode}")

documents = []
for path in files:
    with open(path) as f:
        documents += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
by_kind = {}
for name, d in documents:
    by_kind.setdefault(d["kind"], []).append(d)
    if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "esteira":
        problems.append(f"{name}: {d['kind']} {d['metadata']['name']} is not in the namespace esteira")

for kind, count_field, least in [("RabbitmqCluster", "replicas", 3), ("Cluster", "instances", 3)]:
    found = by_kind.get(kind, [])
    if not found or found[0]["spec"].get(count_field, 1) < least:
        problems.append(f"a {kind} with {count_field} of at least {least} is missing")

deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
budgets = by_kind.get("PodDisruptionBudget", [])
executables = sorted(e for e in os.listdir(os.path.join(root, "Services")) if os.path.isdir(os.path.join(root, "Services", e)))
for exe in executables:
    name = f"esteira-{exe}"
    d = deployments.get(name)
    if d is None:
        problems.append(f"executable {exe} has no Deployment {name}")
        continue
    pod = d["spec"]["template"]
    container = pod["spec"]["containers"][0]
    if not container["image"].startswith(f"esteira/{exe}:"):
        problems.append(f"{name} runs {container['image']}, not esteira/{exe}")
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        if container.get(probe, {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{name} has no {probe} on /healthz")
    requests = container.get("resources", {}).get("requests", {})
    if not {"cpu", "memory"} <= requests.keys():
        problems.append(f"{name} requests no cpu and memory")
    env = {e["name"] for e in container.get("env", [])}
    if not {"ESTEIRA_DATABASE_URL", "ESTEIRA_AMQP_URL"} <= env:
        problems.append(f"{name} is not given ESTEIRA_DATABASE_URL and ESTEIRA_AMQP_URL")
    labels = pod["metadata"]["labels"]
    if d["spec"]["selector"]["matchLabels"].items() - labels.items():
        problems.append(f"{name}'s selector does not match its pods")
    if not any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets):
        problems.append(f"{name} has no PodDisruptionBudget")
for extra in sorted(set(deployments) - {f"esteira-{e}" for e in executables}):
    problems.append(f"Deployment {extra} runs no executable of Services/")

scalers = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == "esteira-processor"]
if not scalers or not any(m["type"] == "External" and m["external"]["metric"]["name"] == "esteira_work_messages_ready"
                          for m in scalers[0]["spec"].get("metrics", [])):
    problems.append("the processors have no HorizontalPodAutoscaler on the work queues' depth (esteira_work_messages_ready)")

for p in problems:
    print(p)
status = "failed" if problems else "passed"
print(f"kubernetes: {status}, {len(files)} manifests, {len(documents)} resources, {len(executables)} executables"
      f" (Kubernetes {version}, strict){'' if not problems else f', {len(problems)} problems'}")
sys.exit(1 if problems else 0)
