#!/usr/bin/env python3
"""Checks the container and Kubernetes kit without a container engine or a
cluster (neither runs in CI): every file parses, names what the repository
has, and carries what the README promises (non-root, health checks,
probes, three replicas, a disruption budget). Run by deploy/check.sh."""

import os
import sys
import tomllib

import yaml

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
deploy = os.path.join(root, "deploy")
problems = []


def expect(condition, what):
    if not condition:
        problems.append(what)


# Dockerfile: two stages, the binary built locked, a non-root user, a health check.
dockerfile = open(os.path.join(deploy, "docker", "Dockerfile")).read()
lines = [line.strip() for line in dockerfile.splitlines()]
expect(sum(line.startswith("FROM ") for line in lines) == 2, "Dockerfile: two stages")
expect(any("cargo build --release --locked -p secapp" in line for line in lines), "Dockerfile: builds secapp locked")
users = [line.split()[1] for line in lines if line.startswith("USER ")]
expect(users and users[-1] not in ("root", "0"), "Dockerfile: runs as a non-root user")
expect(any(line.startswith("HEALTHCHECK") for line in lines), "Dockerfile: a health check")
expect("/readyz" in dockerfile, "Dockerfile: the health check asks /readyz")

# Compose: the services, three secapp replicas, every mounted file present.
compose_dir = os.path.join(deploy, "compose")
compose = yaml.safe_load(open(os.path.join(compose_dir, "compose.yaml")))
services = compose["services"]
expect(set(services) == {"postgres", "secapp", "haproxy", "prometheus", "grafana"}, f"compose: services {sorted(services)}")
expect(services["secapp"]["deploy"]["replicas"] == 3, "compose: three secapp replicas")
build = services["secapp"]["build"]
expect(os.path.isfile(os.path.join(compose_dir, build["context"], build["dockerfile"])), "compose: the Dockerfile it builds")
expect(services["secapp"]["environment"]["SECAPP_DATABASE_URL"].startswith("postgres://"), "compose: secapp on PostgreSQL")
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            expect(os.path.exists(os.path.join(compose_dir, source)), f"compose: {name} mounts {source}, which exists")
prometheus = yaml.safe_load(open(os.path.join(compose_dir, "prometheus.yml")))
expect(prometheus["scrape_configs"][0]["dns_sd_configs"][0]["port"] == 9100, "compose: Prometheus scrapes the metrics listener")

# Kubernetes: the objects, probes, security context, matching selectors.
manifests = [doc for doc in yaml.safe_load_all(open(os.path.join(deploy, "kubernetes", "secapp.yaml"))) if doc]
kinds = {doc["kind"]: doc for doc in manifests}
expect(set(kinds) == {"Secret", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}, f"kubernetes: kinds {sorted(kinds)}")
deployment = kinds["Deployment"]["spec"]
labels = deployment["template"]["metadata"]["labels"]
expect(deployment["replicas"] == 3, "kubernetes: three replicas")
expect(deployment["selector"]["matchLabels"].items() <= labels.items(), "kubernetes: the Deployment selects its pods")
expect(kinds["Service"]["spec"]["selector"].items() <= labels.items(), "kubernetes: the Service selects the pods")
expect(kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items(), "kubernetes: the budget selects the pods")
pod = deployment["template"]["spec"]
expect(pod["securityContext"]["runAsNonRoot"] is True, "kubernetes: non-root")
container = pod["containers"][0]
expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "kubernetes: readiness on /readyz")
expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "kubernetes: liveness on /healthz")
config = tomllib.loads(kinds["ConfigMap"]["data"]["config.toml"])
reference = open(os.path.join(root, "docs", "configuration.md")).read()
for key in config:
    expect(f"| `{key}` |" in reference, f"kubernetes: config key {key} is a setting docs/configuration.md lists")

if problems:
    for problem in problems:
        print(f"   NOT OK: {problem}", file=sys.stderr)
    sys.exit(1)
print("   the Dockerfile, compose file and Kubernetes manifests are consistent")
