#!/usr/bin/env python3
"""Project-specific deployment checks, run by scripts/deploy-lint (inside .venv-lint).

Subcommands:
  dockerfile PATH               structural checks of the runtime Dockerfile (no hadolint here)
  compose CONFIG_JSON           checks on `docker compose config --format json` output
  compose-cluster CONFIG_JSON   the same rules for deploy/cluster/compose.yaml, plus the clusters:
                                RabbitMQ nodes sharing one cookie, the Redis Cluster and its create
                                job, URL lists naming every node, quorum queues
  k8s-split RENDERED OUTDIR     split `kubectl kustomize` output: built-in kinds to
                                OUTDIR/builtin.yaml, KEDA documents to OUTDIR/keda/<kind>/*.json,
                                RabbitMQ operator documents to OUTDIR/rabbitmq/<kind>/*.json
  k8s-semantics RENDERED        cross-references and invariants the schemas cannot express
  k8s-cluster RENDERED          deploy/k8s-cluster: the RabbitmqCluster, the Redis Cluster and its
                                create Job, the URL lists in the Secret, KEDA on one broker host

Each prints one line per problem and exits 1 if there was any.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import yaml

PROBLEMS: list[str] = []

KEDA_GROUP = "keda.sh/"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
RABBITMQ_GROUP = "rabbitmq.com/"
RABBITMQ_KINDS = {"RabbitmqCluster"}
WORK_QUEUE = "workflow.execution"
DRAIN_DEFAULT_SECS = 30


def problem(msg: str) -> None:
    PROBLEMS.append(msg)
    print(f"  FAIL {msg}")


def finish(what: str) -> int:
    if PROBLEMS:
        print(f"{what}: {len(PROBLEMS)} problem(s)")
        return 1
    print(f"{what}: ok")
    return 0


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    if buf:
        problem(f"Dockerfile: line {start}: continuation at end of file")
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def check_dockerfile(path: str) -> int:
    ins = dockerfile_instructions(Path(path).read_text())
    stages: list[dict] = []
    for no, word, args in ins:
        if word == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.IGNORECASE)
            if not m:
                problem(f"Dockerfile:{no}: cannot parse FROM {args!r}")
                continue
            stages.append({"image": m.group(1), "name": (m.group(2) or "").lower(), "line": no, "ins": []})
        elif stages:
            stages[-1]["ins"].append((no, word, args))
        elif word != "ARG":
            problem(f"Dockerfile:{no}: {word} before the first FROM")
        if word == "ADD" and re.search(r"https?://", args):
            problem(f"Dockerfile:{no}: ADD from a URL (use a pinned download in a RUN step)")

    if len(stages) < 2:
        problem("Dockerfile: expected a multi-stage build (builder + runtime)")
        return finish("dockerfile")
    for st in stages:
        image = st["image"]
        if "$" not in image and not re.search(r"[:@]", image.split("/")[-1]):
            problem(f"Dockerfile:{st['line']}: base image {image!r} has no tag")
        if image.endswith(":latest"):
            problem(f"Dockerfile:{st['line']}: base image {image!r} uses :latest")

    builder = next((s for s in stages if s["name"] == "builder"), None)
    if builder is None:
        problem("Dockerfile: no `FROM ... AS builder` stage")
    else:
        runs = " ".join(a for _, w, a in builder["ins"] if w == "RUN")
        if not re.search(r"cargo build\b[^&;]*--release", runs) or "--locked" not in runs or "-p baton" not in runs:
            problem("Dockerfile: builder must run `cargo build --release --locked -p baton`")
        if "--mount=type=cache" not in runs:
            problem("Dockerfile: builder has no BuildKit cache mount")

    final = stages[-1]
    if final is builder:
        problem("Dockerfile: the last stage is the builder; the runtime stage must come last")
    fins = final["ins"]

    def last(word: str) -> tuple[int, str] | None:
        found = [(no, a) for no, w, a in fins if w == word]
        return found[-1] if found else None

    user = last("USER")
    if user is not None:
        name = user[1].split(":")[0]
        if name in ("root", "0"):
            problem(f"Dockerfile:{user[0]}: runtime stage runs as root")
    elif not final["image"].endswith(":nonroot") and ":nonroot@" not in final["image"]:
        problem("Dockerfile: runtime stage sets no non-root USER and is not a :nonroot image")

    sig = last("STOPSIGNAL")
    if sig is None or sig[1] not in ("SIGTERM", "15"):
        problem("Dockerfile: runtime stage needs `STOPSIGNAL SIGTERM`")

    ep = last("ENTRYPOINT")
    if ep is None or exec_form(ep[1]) != ["/usr/local/bin/baton"]:
        problem('Dockerfile: runtime needs ENTRYPOINT ["/usr/local/bin/baton"] (exec form)')
    cmd = last("CMD")
    if cmd is None or exec_form(cmd[1]) != ["worker"]:
        problem('Dockerfile: runtime needs CMD ["worker"] (exec form)')

    hc = last("HEALTHCHECK")
    if hc is None:
        problem("Dockerfile: runtime stage has no HEALTHCHECK")
    else:
        _, _, hc_cmd = hc[1].partition("CMD")
        argv = exec_form(hc_cmd.strip())
        if not argv or not argv[0].endswith("baton") or "healthcheck" not in argv[1:2]:
            problem("Dockerfile: HEALTHCHECK must be exec form running `baton healthcheck` (no shell/curl)")

    expose = last("EXPOSE")
    if expose is None or "9090" not in re.split(r"[\s/]+", expose[1]):
        problem("Dockerfile: runtime stage should EXPOSE 9090")
    return finish("dockerfile")


# ------------------------------------------------------------------- Compose


def duration_secs(value) -> float:
    """Compose durations as rendered by `config --format json`: nanoseconds or '45s'/'1m30s'."""
    if isinstance(value, (int, float)):
        return value / 1e9
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(h|m|s|ms|us|ns)", str(value)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total


def check_compose(config_json: str) -> int:
    cfg = json.loads(Path(config_json).read_text())
    services = cfg.get("services", {})
    for name in ("rabbitmq", "redis", "worker"):
        if name not in services:
            problem(f"compose: service {name!r} missing")
    check_compose_services(services)
    w = services.get("worker")
    if w:
        check_compose_worker(w)
    return finish("compose semantics")


def check_compose_services(services: dict, one_shot: frozenset = frozenset()) -> None:
    """Rules for every long-running service; `one_shot` ones must instead not restart."""
    for name, svc in services.items():
        if name in one_shot:
            if svc.get("restart", "no") != "no":
                problem(f"compose: {name}: a one-shot job must not restart (restart: \"no\")")
            continue
        image = svc.get("image", "")
        if "build" not in svc and (":" not in image.split("/")[-1] or image.endswith(":latest")):
            problem(f"compose: {name}: image {image!r} is not pinned to a tag")
        if svc.get("logging", {}).get("driver") != "json-file" or "max-size" not in svc.get("logging", {}).get("options", {}):
            problem(f"compose: {name}: needs json-file logging with max-size")
        if svc.get("restart") != "unless-stopped":
            problem(f"compose: {name}: restart should be unless-stopped")
        if not svc.get("healthcheck", {}).get("test"):
            problem(f"compose: {name}: no healthcheck")


def check_compose_worker(w: dict, brokers: tuple = ("rabbitmq", "redis")) -> None:
    if "container_name" in w:
        problem("compose: worker: container_name breaks `--scale worker=N`")
    if w.get("ports"):
        problem("compose: worker: published ports break `--scale worker=N`")
    if w.get("command") != ["worker"]:
        problem("compose: worker: command must be [\"worker\"]")
    for dep in brokers:
        want = "service_completed_successfully" if dep.endswith("-create") else "service_healthy"
        if w.get("depends_on", {}).get(dep, {}).get("condition") != want:
            problem(f"compose: worker: depends_on {dep} must be condition: {want}")
    if not w.get("init"):
        problem("compose: worker: init: true expected")
    limits = w.get("deploy", {}).get("resources", {}).get("limits", {})
    if not limits.get("memory"):
        problem("compose: worker: deploy.resources.limits.memory missing")
    test = w.get("healthcheck", {}).get("test", [])
    if "healthcheck" not in test:
        problem("compose: worker: healthcheck must run `baton healthcheck`")
    env = w.get("environment") or {}
    for key in ("BATON_AMQP_URL", "BATON_REDIS_URL"):
        if not env.get(key):
            problem(f"compose: worker: environment {key} missing")
    drain = float(env.get("BATON_DRAIN_TIMEOUT_SECS") or DRAIN_DEFAULT_SECS)
    grace = duration_secs(w.get("stop_grace_period", "10s"))
    if grace < drain + 10:
        problem(f"compose: worker: stop_grace_period {grace:g}s < drain {drain:g}s + 10s")


def url_hosts(value: str, scheme: str) -> list[str]:
    """The host of each URL of a comma-separated list (problems for entries of another scheme)."""
    hosts = []
    for url in (u.strip() for u in str(value).split(",")):
        m = re.match(rf"^{scheme}://(?:[^@/]*@)?([^:/,]+)", url)
        if not m:
            problem(f"URL list entry {url!r} is not a {scheme}:// URL")
            continue
        hosts.append(m.group(1))
    return hosts


def check_compose_cluster(config_json: str) -> int:
    cfg = json.loads(Path(config_json).read_text())
    services = cfg.get("services", {})
    command = lambda svc: " ".join(svc.get("command") or [])  # noqa: E731
    rabbits = {n: s for n, s in services.items() if s.get("image", "").startswith("rabbitmq:")}
    redises = {n: s for n, s in services.items() if "--cluster-enabled yes" in command(s)}
    creates = {n: s for n, s in services.items() if "--cluster create" in command(s)}
    if len(rabbits) < 3 or len(rabbits) % 2 == 0:
        problem(f"compose-cluster: {len(rabbits)} RabbitMQ node(s); a quorum needs an odd number >= 3")
    cookies = {(s.get("environment") or {}).get("RABBITMQ_ERLANG_COOKIE") for s in rabbits.values()}
    if len(cookies) != 1 or not next(iter(cookies)):
        problem("compose-cluster: the RabbitMQ nodes must share one RABBITMQ_ERLANG_COOKIE")
    rabbit_conf = "\n".join(c.get("content", "") for c in (cfg.get("configs") or {}).values())
    for name, svc in rabbits.items():
        host = svc.get("hostname")
        if host != name:
            problem(f"compose-cluster: {name}: hostname must be the service name (the node is rabbit@<hostname>)")
        if f"rabbit@{host}" not in rabbit_conf:
            problem(f"compose-cluster: {name}: rabbit@{host} is not in the peer discovery config")
        if not svc.get("volumes"):
            problem(f"compose-cluster: {name}: no data volume")
    if "default_queue_type = quorum" not in rabbit_conf:
        problem("compose-cluster: the RabbitMQ config must set default_queue_type = quorum")
    if len(redises) != 6:
        problem(f"compose-cluster: {len(redises)} Redis cluster node(s), expected 6 (3 primaries + 3 replicas)")
    if len(creates) != 1:
        problem(f"compose-cluster: {len(creates)} Redis cluster create job(s), expected 1")
    for name, svc in creates.items():
        cmd = command(svc)
        for node in redises:
            if f"{node}:6379" not in cmd:
                problem(f"compose-cluster: {name}: does not name {node}:6379")
        if "--cluster-replicas 1" not in cmd:
            problem(f"compose-cluster: {name}: needs --cluster-replicas 1")
        for node in redises:
            if (svc.get("depends_on") or {}).get(node, {}).get("condition") != "service_healthy":
                problem(f"compose-cluster: {name}: depends_on {node} must be condition: service_healthy")
    check_compose_services(services, one_shot=frozenset(creates))
    deps = tuple(rabbits) + tuple(creates)
    for role in ("worker", "master"):
        svc = services.get(role)
        if svc is None:
            problem(f"compose-cluster: service {role!r} missing")
            continue
        if role == "worker":
            check_compose_worker(svc, deps)
        env = svc.get("environment") or {}
        if env.get("BATON_QUEUE_TYPE") != "quorum":
            problem(f"compose-cluster: {role}: BATON_QUEUE_TYPE must be quorum on a RabbitMQ cluster")
        if sorted(url_hosts(env.get("BATON_AMQP_URL", ""), "amqp")) != sorted(rabbits):
            problem(f"compose-cluster: {role}: BATON_AMQP_URL must list every RabbitMQ node once")
        if sorted(url_hosts(env.get("BATON_REDIS_URL", ""), "redis")) != sorted(redises):
            problem(f"compose-cluster: {role}: BATON_REDIS_URL must list every Redis node once")
        for dep in deps:
            if dep not in (svc.get("depends_on") or {}):
                problem(f"compose-cluster: {role}: must depend on {dep}")
    return finish("compose-cluster semantics")


# ---------------------------------------------------------------- Kubernetes


def load_docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def is_keda(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).startswith(KEDA_GROUP)


def k8s_split(rendered: str, outdir: str) -> int:
    out = Path(outdir)
    builtin = []
    for doc in load_docs(rendered):
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            problem(f"k8s: a rendered document has no kind/apiVersion: {str(doc)[:80]}")
            continue
        if str(doc.get("apiVersion", "")).startswith(RABBITMQ_GROUP):
            if doc["kind"] not in RABBITMQ_KINDS:
                problem(f"k8s: no schema for RabbitMQ operator kind {doc['kind']} (deploy/k8s/schemas/)")
                continue
            target = out / "rabbitmq" / doc["kind"].lower()
            target.mkdir(parents=True, exist_ok=True)
            name = doc.get("metadata", {}).get("name", "unnamed")
            (target / f"{name}.json").write_text(json.dumps(doc, indent=2))
        elif is_keda(doc):
            if doc["kind"] not in KEDA_KINDS:
                problem(f"k8s: no vendored schema for KEDA kind {doc['kind']} (deploy/k8s/schemas/)")
                continue
            target = out / "keda" / doc["kind"].lower()
            target.mkdir(parents=True, exist_ok=True)
            name = doc.get("metadata", {}).get("name", "unnamed")
            (target / f"{name}.json").write_text(json.dumps(doc, indent=2))
        else:
            builtin.append(doc)
    (out / "builtin.yaml").write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    print(f"k8s: {len(builtin)} built-in document(s), KEDA: "
          + ", ".join(f"{p.name}={len(list(p.glob('*.json')))}" for p in sorted((out / 'keda').glob('*'))))
    return finish("k8s split")


def k8s_semantics(rendered: str) -> int:
    docs = load_docs(rendered)
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def get(kind: str, name: str) -> dict | None:
        return by_kind.get(kind, {}).get(name)

    # KEDA: every trigger metadata value is a string (the CRD says additionalProperties: string;
    # a bare 20 in YAML is an integer and the API server rejects the whole object).
    for name, so in by_kind.get("ScaledObject", {}).items():
        spec = so.get("spec", {})
        for i, trig in enumerate(spec.get("triggers", [])):
            for key, value in (trig.get("metadata") or {}).items():
                if not isinstance(value, str):
                    problem(f"ScaledObject/{name}: triggers[{i}].metadata.{key} is "
                            f"{type(value).__name__} {value!r}; quote it (\"{value}\")")
            if trig.get("type") == "rabbitmq":
                md = trig.get("metadata") or {}
                if md.get("queueName") != WORK_QUEUE:
                    problem(f"ScaledObject/{name}: rabbitmq trigger must watch {WORK_QUEUE!r}")
                if md.get("mode") != "QueueLength":
                    problem(f"ScaledObject/{name}: rabbitmq trigger mode must be QueueLength")
                if "host" in md:
                    problem(f"ScaledObject/{name}: broker host (with credentials) belongs in a TriggerAuthentication")
            ref = trig.get("authenticationRef")
            if ref:
                kind = ref.get("kind", "TriggerAuthentication")
                if kind == "TriggerAuthentication" and not get(kind, ref.get("name")):
                    problem(f"ScaledObject/{name}: authenticationRef {ref.get('name')!r} not in the bundle")
        target = spec.get("scaleTargetRef", {})
        if target.get("kind", "Deployment") == "Deployment" and not get("Deployment", target.get("name")):
            problem(f"ScaledObject/{name}: scaleTargetRef {target.get('name')!r} is not a Deployment in the bundle")
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            problem(f"ScaledObject/{name}: minReplicaCount > maxReplicaCount")

    for name, ta in by_kind.get("TriggerAuthentication", {}).items():
        for ref in ta.get("spec", {}).get("secretTargetRef", []):
            secret = get("Secret", ref.get("name"))
            if secret is None:
                problem(f"TriggerAuthentication/{name}: Secret {ref.get('name')!r} not in the bundle")
                continue
            keys = set((secret.get("data") or {})) | set((secret.get("stringData") or {}))
            if ref.get("key") not in keys:
                problem(f"TriggerAuthentication/{name}: Secret {ref.get('name')!r} has no key {ref.get('key')!r}")

    for name, dep in by_kind.get("Deployment", {}).items():
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"].get("metadata", {}).get("labels", {})
        env: dict[str, str] = {}
        for c in pod.get("containers", []):
            cname = f"Deployment/{name}/{c['name']}"
            for src in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in src:
                        obj = get(kind, src[key]["name"])
                        if obj is None:
                            problem(f"{cname}: envFrom {kind} {src[key]['name']!r} not in the bundle")
                        else:
                            env.update(obj.get("data") or {})
                            env.update(obj.get("stringData") or {})
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
                p = c.get(probe)
                if not p:
                    problem(f"{cname}: no {probe}")
                elif path and p.get("httpGet", {}).get("path") != path:
                    problem(f"{cname}: {probe} should GET {path}")
            if not c.get("resources", {}).get("limits", {}).get("memory"):
                problem(f"{cname}: no memory limit")
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False \
                    or "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problem(f"{cname}: securityContext must set readOnlyRootFilesystem, no privilege escalation, drop ALL")
            pre = c.get("lifecycle", {}).get("preStop", {})
            pre_secs = pre.get("sleep", {}).get("seconds", 0)
            grace = pod.get("terminationGracePeriodSeconds", 30)
            drain = int(env.get("BATON_DRAIN_TIMEOUT_SECS", DRAIN_DEFAULT_SECS))
            if grace < pre_secs + drain + 10:
                problem(f"{cname}: terminationGracePeriodSeconds {grace} < preStop {pre_secs} + "
                        f"drain {drain} + 10")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problem(f"Deployment/{name}: pod securityContext.runAsNonRoot must be true")
        if "replicas" in dep["spec"] and any(
                so["spec"]["scaleTargetRef"]["name"] == name for so in by_kind.get("ScaledObject", {}).values()):
            problem(f"Deployment/{name}: sets replicas although a ScaledObject owns it (every apply would reset it)")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                if all(labels.get(k) == v for k, v in p["spec"].get("selector", {}).get("matchLabels", {}).items())]
        if not pdbs:
            problem(f"Deployment/{name}: no PodDisruptionBudget selects its pods")

    for name, cm in by_kind.get("ConfigMap", {}).items():
        for key, value in (cm.get("data") or {}).items():
            if not isinstance(value, str):
                problem(f"ConfigMap/{name}: data.{key} must be a string, got {value!r}")
    return finish("k8s semantics")


def k8s_cluster(rendered: str) -> int:
    docs = load_docs(rendered)
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    rabbits = by_kind.get("RabbitmqCluster", {})
    if len(rabbits) != 1:
        problem(f"k8s-cluster: {len(rabbits)} RabbitmqCluster(s), expected 1")
    pods: list[str] = []
    for name, rc in rabbits.items():
        spec = rc.get("spec", {})
        replicas = spec.get("replicas", 1)
        if replicas < 3 or replicas % 2 == 0:
            problem(f"RabbitmqCluster/{name}: replicas {replicas}; a quorum needs an odd number >= 3")
        if "default_queue_type = quorum" not in spec.get("rabbitmq", {}).get("additionalConfig", ""):
            problem(f"RabbitmqCluster/{name}: additionalConfig must set default_queue_type = quorum")
        pods += [f"{name}-server-{i}.{name}-nodes" for i in range(replicas)]
    sets = [s for s in by_kind.get("StatefulSet", {}).values()
            if "--cluster-enabled yes" in " ".join(c for ct in s["spec"]["template"]["spec"]["containers"]
                                                   for c in ct.get("args", []) + ct.get("command", []))]
    if len(sets) != 1:
        problem(f"k8s-cluster: {len(sets)} Redis Cluster StatefulSet(s), expected 1")
    redis_nodes: list[str] = []
    for ss in sets:
        name, svc = ss["metadata"]["name"], ss["spec"].get("serviceName")
        if ss["spec"].get("replicas") != 6:
            problem(f"StatefulSet/{name}: replicas must be 6 (3 primaries + 3 replicas)")
        if by_kind.get("Service", {}).get(svc, {}).get("spec", {}).get("clusterIP") != "None":
            problem(f"StatefulSet/{name}: serviceName {svc!r} must be a headless Service in the bundle")
        redis_nodes = [f"{name}-{i}.{svc}" for i in range(ss["spec"].get("replicas", 0))]
    jobs = [j for j in by_kind.get("Job", {}).values()
            if "--cluster create" in " ".join(a for ct in j["spec"]["template"]["spec"]["containers"]
                                              for a in ct.get("args", []) + ct.get("command", []))]
    if len(jobs) != 1:
        problem(f"k8s-cluster: {len(jobs)} Redis cluster create Job(s), expected 1")
    for job in jobs:
        cmd = " ".join(a for ct in job["spec"]["template"]["spec"]["containers"]
                       for a in ct.get("args", []) + ct.get("command", []))
        for node in redis_nodes:
            if f"{node}:6379" not in cmd:
                problem(f"Job/{job['metadata']['name']}: does not name {node}:6379")
        if "--cluster-replicas 1" not in cmd:
            problem(f"Job/{job['metadata']['name']}: needs --cluster-replicas 1")
    secret = by_kind.get("Secret", {}).get("baton-secrets", {})
    data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    if sorted(url_hosts(data.get("BATON_AMQP_URL", ""), "amqp")) != sorted(pods):
        problem("Secret/baton-secrets: BATON_AMQP_URL must list every RabbitMQ pod once")
    if sorted(url_hosts(data.get("BATON_REDIS_URL", ""), "redis")) != sorted(redis_nodes):
        problem("Secret/baton-secrets: BATON_REDIS_URL must list every Redis pod once")
    for cm in ("baton-config", "baton-master-config"):
        if (by_kind.get("ConfigMap", {}).get(cm, {}).get("data") or {}).get("BATON_QUEUE_TYPE") != "quorum":
            problem(f"ConfigMap/{cm}: BATON_QUEUE_TYPE must be quorum on a RabbitMQ cluster")
    for name, ta in by_kind.get("TriggerAuthentication", {}).items():
        for ref in ta.get("spec", {}).get("secretTargetRef", []):
            if ref.get("parameter") == "host" and "," in str(data.get(ref.get("key"), "")):
                problem(f"TriggerAuthentication/{name}: KEDA's host {ref.get('key')!r} is a URL list; "
                        "it takes one broker URL")
    return finish("k8s-cluster")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "dockerfile":
            return check_dockerfile(*args)
        if cmd == "compose":
            return check_compose(*args)
        if cmd == "compose-cluster":
            return check_compose_cluster(*args)
        if cmd == "k8s-cluster":
            return k8s_cluster(*args)
        if cmd == "k8s-split":
            return k8s_split(*args)
        if cmd == "k8s-semantics":
            return k8s_semantics(*args)
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        print(f"  FAIL {cmd}: {type(exc).__name__}: {exc}")
        return 1
    print(f"unknown subcommand {cmd!r}; usage: {shlex.quote(argv[0])} "
          "dockerfile|compose|compose-cluster|k8s-split|k8s-semantics|k8s-cluster ...")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
