"""The checks of deploy/k8s that a schema cannot make, on the YAML `kubectl kustomize` renders.

    k8s_check.py check OVERLAY.yaml...      every check on each rendered overlay
    k8s_check.py self-test OVERLAY.yaml...  each broken variant of them must fail its check
    k8s_check.py custom-kinds               the kinds checked here against deploy/k8s/schemas/
                                            instead of by kubernetes-validate

Run by tests/system/k8s.sh with the Python of .venv-k8s (PyYAML, jsonschema, kubernetes-validate).
An overlay is named by its file's stem. Exits 1 on any problem.
"""

import base64
import copy
import functools
import json
import os
import re
import sys
import tomllib
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import referencing
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
K8S_VERSION = os.environ.get("K8S_VERSION", "1.32")  # whose schemas the custom ones refer to (k8s.sh sets it)

# The images the container build produces, by the program each container runs.
OWN_IMAGES = {"allsweep": "allsweep-coordinator", "allsweep-worker": "allsweep-worker"}
THIRD_PARTY_IMAGES = {"postgres": "the quick start's database (components/postgres)"}

# What every container runs as, and the containers allowed otherwise, with why.
SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "drop": ["ALL"]}
POD_LEVEL = {"runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile"}
SECURITY_EXCEPTIONS = {
    ("allsweep-postgres", "postgres"): {
        "runAsUser": (999, "the postgres image's own user, which owns its data directory"),
        "runAsGroup": (999, "the postgres image's own group"),
    },
}

# Secrets the user makes outside kustomize: the keys the manifests may read, and why.
EXTERNAL_SECRETS = {
    "allsweep-tls": ({"tls.crt", "tls.key", "ca.crt"},
                     "made by the user or cert-manager (deploy/k8s/README.md, TLS)"),
}

# Custom resources, validated here against schemas written for them.
CUSTOM_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json"}

WORKLOADS = ("Deployment", "StatefulSet")
QUEUE_METRIC = "allsweep_queue_depth"
GPU = "nvidia.com/gpu"
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition"}


class Manifest:
    """One rendered overlay: its documents and the lookups the checks share."""

    def __init__(self, name, docs):
        self.name, self.docs = name, docs

    def of(self, *kinds):
        return [d for d in self.docs if d.get("kind") in kinds]

    def find(self, kind, name, namespace=None):
        for d in self.of(kind):
            if d["metadata"]["name"] == name and (namespace is None or ns(d) == namespace):
                return d
        return None

    def pods(self):
        """(workload, pod spec, pod labels) of every Deployment and StatefulSet."""
        for w in self.of(*WORKLOADS):
            template = w["spec"]["template"]
            yield w, template["spec"], template.get("metadata", {}).get("labels", {})

    def containers(self):
        """(workload, pod spec, container) of every container, init containers too."""
        for w, spec, _ in self.pods():
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield w, spec, c


def ns(doc):
    return doc["metadata"].get("namespace", "default")


def name(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


def env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def program(container):
    return (container.get("command") or [None])[0]


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {"In": present and value in e.get("values", []),
              "NotIn": not present or value not in e.get("values", []),
              "Exists": present, "DoesNotExist": not present}[e["operator"]]
        if not ok:
            return False
    return True


def port_of(container, port):
    """The container port a probe or Service names, by name or number, or None."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p
    return None


def check_selectors(m):
    for w, _, labels in m.pods():
        if not selects(w["spec"]["selector"], labels):
            yield f"{name(w)}: selector {w['spec']['selector']} does not match its pod labels {labels}"
        if w["kind"] == "StatefulSet" and not m.find("Service", w["spec"]["serviceName"], ns(w)):
            yield f"{name(w)}: serviceName {w['spec']['serviceName']} is no Service"


def check_services(m):
    for s in m.of("Service"):
        pods = [(spec, w) for w, spec, labels in m.pods()
                if ns(w) == ns(s) and selects({"matchLabels": s["spec"].get("selector", {})}, labels)]
        if not pods:
            yield f"{name(s)}: selector {s['spec'].get('selector')} selects no pod template"
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            if pods and not any(port_of(c, target) for spec, _ in pods for c in spec["containers"]):
                yield f"{name(s)}: port {p.get('name')} targets {target!r}, no port of its pods"


def check_probes(m):
    for w, _, c in m.containers():
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if probe is None:
                continue
            handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if h in probe]
            where = f"{name(w)} container {c['name']} {kind}"
            if len(handlers) != 1:
                yield f"{where}: {len(handlers)} handlers {handlers}, Kubernetes wants exactly one"
            for h in handlers:
                if h != "exec" and not port_of(c, probe[h]["port"]):
                    yield f"{where}: port {probe[h]['port']!r} is no port of the container"


def check_listen(m):
    """The coordinator listens on the ports it declares (those the probes and the Service name),
    and Prometheus is told its HTTP port."""
    for w, _, c in m.containers():
        if program(c) != "allsweep":
            continue
        e = env(c)
        for var, port_name in (("ALLSWEEP_LISTEN", "grpc"), ("ALLSWEEP_HTTP", "http")):
            declared = port_of(c, port_name)
            listen = urlsplit(f"//{e.get(var, '')}").port
            if declared is None or listen != declared["containerPort"]:
                yield (f"{name(w)}: {var}={e.get(var)!r} but port {port_name} is "
                       f"{declared and declared['containerPort']}")
        annotations = w["spec"]["template"].get("metadata", {}).get("annotations", {})
        scraped = annotations.get("prometheus.io/port")
        if scraped is None or urlsplit(f"//{e.get('ALLSWEEP_HTTP', '')}").port != int(scraped):
            yield f"{name(w)}: prometheus.io/port {scraped!r} is not the port of ALLSWEEP_HTTP"


def check_grace(m):
    for w, spec, c in m.containers():
        if program(c) != "allsweep-worker":
            continue
        stop = env(c).get("ALLSWEEP_STOP_TIMEOUT")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if stop is None or not stop.isdigit():
            yield f"{name(w)}: ALLSWEEP_STOP_TIMEOUT is {stop!r}, not a number of seconds"
        elif grace <= int(stop):
            yield (f"{name(w)}: terminationGracePeriodSeconds {grace} does not exceed "
                   f"ALLSWEEP_STOP_TIMEOUT {stop}: workers would be killed mid-checkpoint")


def check_images(m):
    for w, _, c in m.containers():
        image, prog = c["image"], program(c)
        repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        if prog in OWN_IMAGES:
            want = f"{OWN_IMAGES[prog]}:{VERSION}"
            if image != want:
                yield f"{name(w)} container {c['name']} runs {prog} from {image}, expected {want}"
        elif repo not in THIRD_PARTY_IMAGES:
            yield f"{name(w)} container {c['name']}: image {image} is neither allsweep's nor listed"


def check_resources(m):
    """Requests and limits everywhere; a worker's GPUs agree with its ALLSWEEP_DEVICE."""
    for w, _, c in m.containers():
        r = c.get("resources", {})
        for part, kinds in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
            for kind in kinds:
                if kind not in r.get(part, {}):
                    yield f"{name(w)} container {c['name']}: no {kind} in resources.{part}"
        if program(c) == "allsweep-worker":
            gpus = r.get("limits", {}).get(GPU)
            device = env(c).get("ALLSWEEP_DEVICE")
            if gpus != r.get("requests", {}).get(GPU):
                yield f"{name(w)}: {GPU} requests and limits differ"
            if (device == "cpu") != (gpus is None):
                yield f"{name(w)}: ALLSWEEP_DEVICE={device} with {gpus or 'no'} {GPU}"


def check_security(m):
    for w, spec, c in m.containers():
        pod, own = spec.get("securityContext", {}), c.get("securityContext", {})
        exceptions = SECURITY_EXCEPTIONS.get((w["metadata"]["name"], c["name"]), {})
        for field, want in SECURITY.items():
            if field == "drop":
                have = own.get("capabilities", {}).get("drop", [])
                ok = "ALL" in have
            else:
                have = own.get(field, pod.get(field) if field in POD_LEVEL else None)
                want = exceptions.get(field, (want,))[0]
                ok = have == want
            if not ok:
                yield f"{name(w)} container {c['name']}: {field} is {have!r}, expected {want!r}"


def check_secrets(m):
    secrets = {(ns(s), s["metadata"]["name"]): set(s.get("data", {})) | set(s.get("stringData", {}))
               for s in m.of("Secret")}

    def known(w, secret, key):
        keys = secrets.get((ns(w), secret)) or EXTERNAL_SECRETS.get(secret, (None,))[0]
        if keys is None:
            return f"{name(w)}: Secret {secret} is neither rendered nor listed as the user's"
        return None if key is None or key in keys else f"{name(w)}: Secret {secret} has no key {key}"

    for w, spec, c in m.containers():
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and (problem := known(w, ref["name"], ref["key"])):
                yield problem
        for e in c.get("envFrom", []):
            if "secretRef" in e and (problem := known(w, e["secretRef"]["name"], None)):
                yield problem
    for w, spec, _ in m.pods():
        for v in spec.get("volumes", []):
            if "secret" in v:
                for key in [i["key"] for i in v["secret"].get("items", [])] or [None]:
                    if problem := known(w, v["secret"]["secretName"], key):
                        yield problem


def check_autoscaler(m):
    for a in m.of("ScaledObject", "HorizontalPodAutoscaler"):
        ref = a["spec"]["scaleTargetRef"]
        target = m.find(ref.get("kind", "Deployment"), ref["name"], ns(a))
        if target is None:
            yield f"{name(a)}: scales {ref.get('kind', 'Deployment')}/{ref['name']}, not in the render"
        elif "replicas" in target["spec"]:
            yield f"{name(a)}: {name(target)} sets replicas, which each kubectl apply would reset"
        if a["kind"] == "ScaledObject":
            queries = [t["metadata"].get("query", "") for t in a["spec"]["triggers"]
                       if t["type"] == "prometheus"]
            if not any(QUEUE_METRIC in q for q in queries):
                yield f"{name(a)}: no prometheus trigger's query names {QUEUE_METRIC}: {queries}"
            for q in queries:
                for other in set(re.findall(r'namespace="([^"]*)"', q)) - {ns(a)}:
                    yield f"{name(a)}: query reads namespace {other}, the coordinator is in {ns(a)}"
        else:
            metrics = [x["external"]["metric"]["name"] for x in a["spec"].get("metrics", [])
                       if x["type"] == "External"]
            if QUEUE_METRIC not in metrics:
                yield f"{name(a)}: its External metrics {metrics} leave out {QUEUE_METRIC}"


def check_custom_resources(m):
    for d in m.docs:
        file = CUSTOM_SCHEMAS.get((d.get("apiVersion"), d.get("kind")))
        if file:
            for e in custom_validator(file).iter_errors(d):
                path = ".".join(str(p) for p in e.absolute_path)
                yield f"{name(d)}: {path}: {e.message}"


@functools.lru_cache
def custom_validator(file):
    schema = json.loads((ROOT / "deploy/k8s/schemas" / file).read_text())
    strict = (resources.files("kubernetes_validate") / "kubernetes-json-schema"
              / f"v{K8S_VERSION}.0-local-strict" / "_definitions.json")
    definitions = referencing.Resource.from_contents(json.loads(strict.read_text()))
    return jsonschema.Draft202012Validator(schema, registry=definitions @ referencing.Registry())


def check_addresses(m):
    """In-cluster addresses (a host without dots) name a Service and one of its ports."""
    urls = [(f"{name(w)} {k}", v) for w, _, c in m.containers() for k, v in env(c).items()
            if k in ("ALLSWEEP_COORDINATOR", "DATABASE_URL") and v]
    for s in m.of("Secret"):
        for key, value in s.get("data", {}).items():
            if key.endswith("-url"):
                urls.append((f"{name(s)} {key}", b64(value, decode=True)))
    for where, url in urls:
        u = urlsplit(url)
        if not u.hostname or "." in u.hostname:
            continue
        service = m.find("Service", u.hostname)
        if service is None:
            yield f"{where}: {url} names no Service"
        elif u.port not in [p["port"] for p in service["spec"]["ports"]]:
            yield f"{where}: {url}: Service {u.hostname} has no port {u.port}"


def check_tls(m):
    """A coordinator serving TLS has no gRPC probes (they cannot speak TLS), and its workers
    dial https:// trusting a mounted authority; without TLS they dial http://."""
    tls = any("--tls-cert" in (c.get("args", []) + c.get("command", []))
              for _, _, c in m.containers() if program(c) == "allsweep")
    for w, _, c in m.containers():
        if program(c) == "allsweep" and tls:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if "grpc" in c.get(kind, {}):
                    yield f"{name(w)}: {kind} is a gRPC probe, which cannot reach a TLS server"
        if program(c) == "allsweep-worker":
            e = env(c)
            scheme = urlsplit(e.get("ALLSWEEP_COORDINATOR", "")).scheme
            if scheme != ("https" if tls else "http"):
                served = "TLS" if tls else "plain gRPC"
                yield f"{name(w)}: dials {e.get('ALLSWEEP_COORDINATOR')}, the coordinator serves {served}"
            if tls and not under_mount(c, e.get("ALLSWEEP_TLS_CA")):
                yield f"{name(w)}: ALLSWEEP_TLS_CA {e.get('ALLSWEEP_TLS_CA')!r} is on no mounted volume"


def under_mount(container, path, writable=False):
    return path is not None and any(
        (path + "/").startswith(v["mountPath"].rstrip("/") + "/")
        and not (writable and v.get("readOnly")) for v in container.get("volumeMounts", []))


def check_volumes(m):
    """Mounts name real volumes and claims; allsweep writes only where a writable volume is."""
    for w, spec, c in m.containers():
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        templates = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for mount in c.get("volumeMounts", []):
            if mount["name"] not in volumes and mount["name"] not in templates:
                yield f"{name(w)} container {c['name']}: mounts {mount['name']}, no volume of its pod"
        for v in volumes.values():
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and not m.find("PersistentVolumeClaim", claim, ns(w)):
                yield f"{name(w)}: volume {v['name']} claims {claim}, no PersistentVolumeClaim"
        if program(c) in OWN_IMAGES:
            e = env(c)
            for path in [e.get("ALLSWEEP_WORK_DIR"), e.get("ALLSWEEP_ARTIFACTS"), "/tmp"]:
                if path and not under_mount(c, path, writable=True):
                    yield f"{name(w)} container {c['name']}: writes {path}, on no writable volume"
            if e.get("ALLSWEEP_DATA") and not under_mount(c, e["ALLSWEEP_DATA"]):
                yield f"{name(w)}: ALLSWEEP_DATA {e['ALLSWEEP_DATA']} is on no volume"


def check_namespaces(m):
    made = {d["metadata"]["name"] for d in m.of("Namespace")}
    for d in m.docs:
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") not in made:
            yield f"{name(d)}: namespace {d['metadata'].get('namespace')!r} is not one the overlay makes {made}"


CHECKS = {
    "selectors": (check_selectors, "workload selectors match their pod labels"),
    "services": (check_services, "Service selectors select pods; target ports exist"),
    "probes": (check_probes, "one handler per probe, on a real container port"),
    "listen": (check_listen, "the coordinator listens on its declared, scraped ports"),
    "grace": (check_grace, "worker grace period exceeds ALLSWEEP_STOP_TIMEOUT"),
    "images": (check_images, f"allsweep images are allsweep-coordinator/worker:{VERSION}"),
    "resources": (check_resources, "requests and limits set; GPUs match ALLSWEEP_DEVICE"),
    "security": (check_security, "non-root, read-only root, no privilege, caps dropped"),
    "secrets": (check_secrets, "every Secret and key referenced exists"),
    "autoscaler": (check_autoscaler, f"autoscalers target the workers on {QUEUE_METRIC}"),
    "custom-resources": (check_custom_resources, "custom resources match deploy/k8s/schemas/"),
    "addresses": (check_addresses, "in-cluster URLs name a Service and its port"),
    "tls": (check_tls, "TLS: no gRPC probes, workers on https:// with a CA"),
    "volumes": (check_volumes, "mounts and claims exist; writable paths are writable"),
    "namespaces": (check_namespaces, "everything sits in the overlay's namespace"),
}


def run_checks(m):
    return {check: list(fn(m)) for check, (fn, _) in CHECKS.items()}


# Broken variants, each registered with the check that must reject it. A variant changes the
# documents in place and returns False where the overlay has nothing to break that way.
BROKEN = []


def broken(check, what):
    def register(change):
        BROKEN.append((check, what, change))
        return change
    return register


def pod(m, workload):
    w = m.find("Deployment", workload) or m.find("StatefulSet", workload)
    return (w, w["spec"]["template"]["spec"], w["spec"]["template"]["spec"]["containers"][0]) \
        if w else (None, None, None)


def autoscaler(m):
    return (m.of("ScaledObject") + m.of("HorizontalPodAutoscaler") + [None])[0]


def set_env(container, key, value):
    hit = [e for e in container["env"] if e["name"] == key]
    for e in hit:
        e["value"] = value
    return bool(hit)


def b64(text, decode=False):
    return (base64.b64decode(text).decode() if decode else base64.b64encode(text.encode()).decode())


@broken("selectors", "worker pods labelled trainer")
def _(m):
    w, _, _ = pod(m, "allsweep-worker")
    w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] = "trainer"


@broken("services", "coordinator Service selecting a misspelt component")
def _(m):
    m.find("Service", "allsweep-coordinator")["spec"]["selector"]["app.kubernetes.io/component"] = "coordinatr"


@broken("services", "coordinator Service targeting port grpcc")
def _(m):
    m.find("Service", "allsweep-coordinator")["spec"]["ports"][0]["targetPort"] = "grpcc"


@broken("probes", "coordinator readiness probe on port 50052")
def _(m):
    probe = pod(m, "allsweep-coordinator")[2]["readinessProbe"]
    next(h for h in probe.values() if isinstance(h, dict) and "port" in h)["port"] = 50052


@broken("probes", "coordinator liveness probe with two handlers")
def _(m):
    pod(m, "allsweep-coordinator")[2]["livenessProbe"]["tcpSocket"] = {"port": "grpc"}


@broken("listen", "coordinator serving HTTP on another port")
def _(m):
    return set_env(pod(m, "allsweep-coordinator")[2], "ALLSWEEP_HTTP", "0.0.0.0:9090")


@broken("listen", "Prometheus told another port")
def _(m):
    w = pod(m, "allsweep-coordinator")[0]
    w["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "50051"


@broken("grace", "worker grace period equal to its stop timeout")
def _(m):
    pod(m, "allsweep-worker")[1]["terminationGracePeriodSeconds"] = 90


@broken("grace", "worker without ALLSWEEP_STOP_TIMEOUT")
def _(m):
    c = pod(m, "allsweep-worker")[2]
    c["env"] = [e for e in c["env"] if e["name"] != "ALLSWEEP_STOP_TIMEOUT"]


@broken("images", "worker image of another version")
def _(m):
    pod(m, "allsweep-worker")[2]["image"] = "allsweep-worker:0.0.9"


@broken("images", "coordinator image under another name")
def _(m):
    pod(m, "allsweep-coordinator")[2]["image"] = f"allsweep/coordinator:{VERSION}"


@broken("resources", "coordinator without a memory limit")
def _(m):
    del pod(m, "allsweep-coordinator")[2]["resources"]["limits"]["memory"]


@broken("resources", "GPU worker told to train on the CPU")
def _(m):
    c = pod(m, "allsweep-worker")[2]
    return GPU in c["resources"]["limits"] and set_env(c, "ALLSWEEP_DEVICE", "cpu")


@broken("security", "worker with a writable root filesystem")
def _(m):
    pod(m, "allsweep-worker")[2]["securityContext"]["readOnlyRootFilesystem"] = False


@broken("security", "coordinator pod running as root")
def _(m):
    pod(m, "allsweep-coordinator")[1]["securityContext"]["runAsUser"] = 0


@broken("secrets", "coordinator reading key tokn")
def _(m):
    env = pod(m, "allsweep-coordinator")[2]["env"]
    next(e for e in env if e["name"] == "ALLSWEEP_TOKEN")["valueFrom"]["secretKeyRef"]["key"] = "tokn"


@broken("autoscaler", "KEDA query on another metric")
def _(m):
    m.of("ScaledObject")[0]["spec"]["triggers"][0]["metadata"]["query"] = "max(allsweep_leases_running)"


@broken("autoscaler", "KEDA query in another namespace")
def _(m):
    trigger = m.of("ScaledObject")[0]["spec"]["triggers"][0]["metadata"]
    trigger["query"] = trigger["query"].replace('namespace="', 'namespace="x')


@broken("autoscaler", "HPA without the queue metric")
def _(m):
    for metric in m.of("HorizontalPodAutoscaler")[0]["spec"]["metrics"]:
        if metric["external"]["metric"]["name"] == QUEUE_METRIC:
            metric["external"]["metric"]["name"] = "allsweep_queue"


@broken("autoscaler", "autoscaler scaling a missing Deployment")
def _(m):
    autoscaler(m)["spec"]["scaleTargetRef"]["name"] = "allsweep-workers"


@broken("autoscaler", "autoscaled workers with replicas set")
def _(m):
    if autoscaler(m) is None:
        return False
    pod(m, "allsweep-worker")[0]["spec"]["replicas"] = 2


@broken("custom-resources", "ScaledObject trigger with a misspelt threshold")
def _(m):
    metadata = m.of("ScaledObject")[0]["spec"]["triggers"][0]["metadata"]
    metadata["treshold"] = metadata.pop("threshold")


@broken("custom-resources", "ScaledObject with an unknown field")
def _(m):
    m.of("ScaledObject")[0]["spec"]["maxReplicas"] = 8


@broken("addresses", "workers dialling port 50052")
def _(m):
    c = pod(m, "allsweep-worker")[2]
    return set_env(c, "ALLSWEEP_COORDINATOR", env(c)["ALLSWEEP_COORDINATOR"].replace(":50051", ":50052"))


@broken("addresses", "database-url naming a misspelt Service")
def _(m):
    hit = False
    for s in m.of("Secret"):
        url = b64(s["data"]["database-url"], decode=True)
        if "@allsweep-postgres:" in url:
            s["data"]["database-url"] = b64(url.replace("@allsweep-postgres:", "@allsweep-postgress:"))
            hit = True
    return hit


@broken("tls", "workers dialling a TLS coordinator over http://")
def _(m):
    if "--tls-cert" not in pod(m, "allsweep-coordinator")[2].get("args", []):
        return False
    return set_env(pod(m, "allsweep-worker")[2], "ALLSWEEP_COORDINATOR", "http://allsweep-coordinator:50051")


@broken("tls", "gRPC readiness probe on a TLS coordinator")
def _(m):
    c = pod(m, "allsweep-coordinator")[2]
    if "--tls-cert" not in c.get("args", []):
        return False
    c["readinessProbe"] = {"grpc": {"port": 50051}}


@broken("volumes", "worker work dir without its volume")
def _(m):
    c = pod(m, "allsweep-worker")[2]
    c["volumeMounts"] = [v for v in c["volumeMounts"] if v["mountPath"] != "/work"]


@broken("volumes", "artefact volume mounted read-only")
def _(m):
    mounts = pod(m, "allsweep-coordinator")[2]["volumeMounts"]
    next(v for v in mounts if v["name"] == "artifacts")["readOnly"] = True


@broken("namespaces", "workers in namespace default")
def _(m):
    pod(m, "allsweep-worker")[0]["metadata"]["namespace"] = "default"


def apply(change, m):
    """Whether the change applied: False, or a lookup that found nothing, means it did not."""
    try:
        return change(m) is not False
    except (TypeError, KeyError, IndexError, StopIteration):
        return False


def load(path):
    return Manifest(Path(path).stem, [d for d in yaml.safe_load_all(Path(path).read_text()) if d])


def main(argv):
    command, paths = argv[1] if len(argv) > 1 else "", argv[2:]
    if command == "custom-kinds":
        print("\n".join(f"{kind} {api}" for api, kind in CUSTOM_SCHEMAS))
        return 0
    if command not in ("check", "self-test") or not paths:
        print(__doc__, file=sys.stderr)
        return 2
    manifests = [load(p) for p in paths]
    passed = failed = 0
    if command == "check":
        results = {m.name: run_checks(m) for m in manifests}
        for check, (_, what) in CHECKS.items():
            bad = {name: r[check] for name, r in results.items() if r[check]}
            print(f"{'FAIL' if bad else 'ok  '} {check:17} {what} ({', '.join(results)})")
            for overlay, problems in bad.items():
                for p in problems:
                    print(f"       {overlay}: {p}")
            passed, failed = passed + (not bad), failed + bool(bad)
        for (workload, container), fields in SECURITY_EXCEPTIONS.items():
            for field, (value, why) in fields.items():
                print(f"note {workload}/{container}: {field} {value}: {why}")
        for image, why in THIRD_PARTY_IMAGES.items():
            print(f"note image {image} is not allsweep's: {why}")
        for secret, (keys, why) in EXTERNAL_SECRETS.items():
            print(f"note Secret {secret} ({', '.join(sorted(keys))}) is not rendered: {why}")
    else:
        for check, what, change in BROKEN:
            rejected, passing, first = [], [], None
            for m in manifests:
                before = set(CHECKS[check][0](m))
                variant = Manifest(m.name, copy.deepcopy(m.docs))
                if not apply(change, variant):
                    continue
                new = [p for p in CHECKS[check][0](variant) if p not in before]
                (rejected if new else passing).append(m.name)
                first = first or (new or [None])[0]
            ok = bool(rejected) and not passing
            detail = (f"in {', '.join(rejected)}: {first}" if ok else
                      f"PASSED in {', '.join(passing)}" if passing else "no overlay to break so")
            print(f"{'ok  ' if ok else 'FAIL'} {check:17} rejects {what} {detail}")
            passed, failed = passed + ok, failed + (not ok)
    print(f"{command}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
