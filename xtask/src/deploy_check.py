"""Checks of deploy/kubernetes and the Helm chart's renderings (run by xtask/src/deploy_check.rs).

Each document is validated against the Kubernetes schemas that kubernetes-validate ships (strict:
unknown fields fail, and so do kinds it has no schema for), then the DaemonSets get the checks a
schema cannot make, and the chart's rendering is compared with the plain manifests.

Usage: deploy_check.py --k8s VERSION... --plain FILE... --render NAME=FILE...
Exits non-zero on any failure; the last line is `deploy-check: N documents ...`.
"""

import argparse
import copy
import sys

import kubernetes_validate
import yaml

# Labels only the chart sets (its version and manager); everything else must agree.
HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that rejects a key given twice in one mapping (the API server would keep the
    last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(path):
    with open(path) as f:
        text = f.read()
    try:
        return [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{path}: {e}")
        return []


def ident(doc):
    md = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{md.get('namespace', '-')}/{md.get('name')}"


def validate(path, docs, versions):
    n = 0
    for doc in docs:
        for version in versions:
            try:
                got = kubernetes_validate.validate(doc, version, strict=True)
                print(f"ok   {path}: {ident(doc)} against Kubernetes {got} (strict)")
                n += 1
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                fail(f"{path}: {ident(doc)} against Kubernetes {version}: {where}: {e.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                fail(f"{path}: {ident(doc)}: no schema to validate it against: {e}")
    return n


def config_of(docs, name):
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == name:
            return d
    return None


def check_daemonset(path, docs):
    """What the schema cannot see: references between the pieces and contradictory settings."""
    for ds in (d for d in docs if d.get("kind") == "DaemonSet"):
        where = f"{path}: {ident(ds)}"
        spec = ds["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels") or {}
        for k, v in spec["selector"].get("matchLabels", {}).items():
            if labels.get(k) != v:
                fail(f"{where}: selector {k}={v} does not match the pod template's labels")
        if not pod.get("hostPID"):
            fail(f"{where}: hostPID must be true (process ancestry in the host's PID namespace)")
        if pod.get("hostNetwork"):
            fail(f"{where}: hostNetwork is not needed")
        accounts = {d["metadata"]["name"] for d in docs if d.get("kind") == "ServiceAccount"}
        if pod.get("serviceAccountName") not in accounts:
            fail(f"{where}: serviceAccountName {pod.get('serviceAccountName')!r} is not defined here")
        volumes = [v["name"] for v in pod.get("volumes", [])]
        if len(volumes) != len(set(volumes)):
            fail(f"{where}: duplicate volume names {volumes}")
        by_name = {v["name"]: v for v in pod.get("volumes", [])}
        for v in pod.get("volumes", []):
            for src in (v.get("projected") or {}).get("sources", []):
                cm = src.get("configMap")
                if cm and not cm.get("optional") and config_of(docs, cm["name"]) is None:
                    fail(f"{where}: volume {v['name']} needs ConfigMap {cm['name']}, not defined here")
                if cm and not cm.get("optional"):
                    data = (config_of(docs, cm["name"]) or {}).get("data") or {}
                    for item in cm.get("items", []):
                        if item["key"] not in data:
                            fail(f"{where}: ConfigMap {cm['name']} has no key {item['key']}")
            if "hostPath" in v and v["hostPath"].get("type") in (None, ""):
                fail(f"{where}: hostPath volume {v['name']} needs an explicit type")
        annotations = spec["template"]["metadata"].get("annotations") or {}
        for c in pod["containers"]:
            cwhere = f"{where}: container {c['name']}"
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = (c.get(probe) or {}).get("httpGet")
                if not get:
                    fail(f"{cwhere}: no {probe} on /healthz")
                    continue
                if get.get("path") != "/healthz":
                    fail(f"{cwhere}: {probe} asks {get.get('path')}, not /healthz")
                if isinstance(get["port"], str) and get["port"] not in ports:
                    fail(f"{cwhere}: {probe} names port {get['port']}, which the container lacks")
            metrics = ports.get("metrics")
            if annotations.get("prometheus.io/scrape") != "true":
                fail(f"{where}: no prometheus.io/scrape annotation")
            if annotations.get("prometheus.io/port") != str(metrics):
                fail(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} is not the metrics port {metrics}")
            mounts = c.get("volumeMounts", [])
            paths = [m["mountPath"] for m in mounts]
            if len(paths) != len(set(paths)):
                fail(f"{cwhere}: a mountPath is used twice: {paths}")
            for m in mounts:
                if m["name"] not in by_name:
                    fail(f"{cwhere}: mount {m['name']} has no volume")
                if m.get("subPath") or m.get("subPathExpr"):
                    fail(f"{cwhere}: mount {m['name']} uses subPath: ConfigMap updates would not reach it")
                if m.get("recursiveReadOnly") not in (None, "Disabled") and not m.get("readOnly"):
                    fail(f"{cwhere}: mount {m['name']}: recursiveReadOnly needs readOnly")
                v = by_name.get(m["name"], {})
                if "hostPath" in v and m["mountPath"] != "/var/lib/monitor" and not m.get("readOnly"):
                    fail(f"{cwhere}: host path {v['hostPath']['path']} is mounted writable")
            if "/etc/monitor" not in paths or "/var/lib/monitor" not in paths:
                fail(f"{cwhere}: /etc/monitor and /var/lib/monitor must be mounted")
            if by_name.get(next((m["name"] for m in mounts if m["mountPath"] == "/var/lib/monitor"), ""), {}).get("hostPath") is None:
                fail(f"{cwhere}: /var/lib/monitor (the delivery spool) must be a hostPath")
            sc = c.get("securityContext") or {}
            caps = set((sc.get("capabilities") or {}).get("add") or [])
            if sc.get("allowPrivilegeEscalation") is False and (sc.get("privileged") or "SYS_ADMIN" in caps):
                fail(f"{cwhere}: allowPrivilegeEscalation: false contradicts privileged / SYS_ADMIN (the API server rejects it)")
            if not sc.get("privileged"):
                for needed in ("BPF", "PERFMON"):
                    if needed not in caps:
                        fail(f"{cwhere}: neither privileged nor CAP_{needed}")
                if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                    fail(f"{cwhere}: capabilities must drop ALL before adding")
            if not sc.get("readOnlyRootFilesystem"):
                fail(f"{cwhere}: the root filesystem should be read-only")
        # The config the pods read: metrics on a non-loopback address, on the container's port.
        for v in pod.get("volumes", []):
            for src in (v.get("projected") or {}).get("sources", []):
                cm = src.get("configMap")
                if not cm or cm.get("optional"):
                    continue
                text = ((config_of(docs, cm["name"]) or {}).get("data") or {}).get("monitor.yaml")
                if text is None:
                    continue
                config = yaml.load(text, Loader=UniqueKeyLoader) or {}
                address = str(((config.get("metrics") or {}).get("address")) or "")
                host, _, port = address.rpartition(":")
                if host in ("", "127.0.0.1", "localhost", "[::1]"):
                    fail(f"{where}: metrics.address {address!r} is not reachable from the kubelet")
                metrics_ports = [p["containerPort"] for c in pod["containers"] for p in c.get("ports", []) if p.get("name") == "metrics"]
                if port and metrics_ports and int(port) != metrics_ports[0]:
                    fail(f"{where}: metrics.address port {port} is not the container port {metrics_ports[0]}")


def normalize(doc):
    """A document as the cluster would see it, less what only the chart adds."""
    doc = copy.deepcopy(doc)
    labels = (doc.get("metadata") or {}).get("labels")
    if labels:
        for k in HELM_ONLY_LABELS:
            labels.pop(k, None)
    if doc.get("kind") == "ConfigMap":
        for key, value in (doc.get("data") or {}).items():
            if key.endswith((".yaml", ".yml")):
                doc["data"][key] = yaml.load(value, Loader=UniqueKeyLoader)
    return doc


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}.{k}: only in the chart")
            elif k not in b:
                out.append(f"{path}.{k}: only in deploy/kubernetes")
            else:
                out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in deploy/kubernetes, {len(b)} in the chart"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} in deploy/kubernetes, {b!r} in the chart"]


def compare(plain, rendered, name, skip_kinds=()):
    want = {ident(d): normalize(d) for d in plain if d.get("kind") not in skip_kinds}
    got = {ident(d): normalize(d) for d in rendered}
    if sorted(want) != sorted(got):
        fail(f"chart ({name}) renders {sorted(got)}, deploy/kubernetes has {sorted(want)}")
        return
    for key in sorted(want):
        for d in diff(want[key], got[key]):
            fail(f"chart ({name}) differs from deploy/kubernetes in {key}{d}")
    print(f"ok   chart ({name}) renders what deploy/kubernetes holds: {', '.join(sorted(want))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s", action="append", required=True)
    ap.add_argument("--plain", nargs="+", required=True)
    ap.add_argument("--render", nargs="+", default=[], help="NAME=FILE")
    args = ap.parse_args()

    total_docs = 0
    checks = 0
    plain = []
    for path in args.plain:
        docs = load(path)
        if not docs:
            fail(f"{path}: no Kubernetes document")
        total_docs += len(docs)
        checks += validate(path, docs, args.k8s)
        plain += docs
    check_daemonset("deploy/kubernetes", plain)

    renders = {}
    for spec in args.render:
        name, _, path = spec.partition("=")
        docs = load(path)
        if not docs:
            fail(f"chart ({name}): rendered no document")
        total_docs += len(docs)
        checks += validate(f"chart ({name})", docs, args.k8s)
        check_daemonset(f"chart ({name})", docs)
        renders[name] = docs

    # The chart with the namespace rendered is the plain manifests; by default it leaves the
    # namespace to `helm install --create-namespace` or the user.
    if "namespace" in renders:
        compare(plain, renders["namespace"], "namespace.create=true")
    if "default" in renders:
        compare(plain, renders["default"], "defaults", skip_kinds=("Namespace",))

    if total_docs == 0 or checks == 0:
        fail("nothing was validated")
    print(
        f"deploy-check: {total_docs} documents, {checks} schema validations against Kubernetes "
        f"{', '.join(args.k8s)} (kubernetes-validate {kubernetes_validate.__version__}), "
        f"{len(failures)} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
