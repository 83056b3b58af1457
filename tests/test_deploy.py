"""deploy/: the Kubernetes manifests are valid for Kubernetes (strict schemas, offline), run modules that exist,
and set only settings that exist; the Dockerfile copies what exists and installs extras that exist."""

import importlib.util
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from spectare.api.settings import ApiSettings
from spectare.core.config import SectionSettings, Settings
from spectare.detector.settings import DetectorSettings
from spectare.indexer.settings import IndexerSettings
from spectare.ingest.settings import IngestSettings
from spectare.segmenter.settings import SegmenterSettings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
SECTIONS: dict[str, type[SectionSettings]] = {
    cls.section(): cls for cls in (ApiSettings, DetectorSettings, IndexerSettings, IngestSettings, SegmenterSettings)
}
KUBERNETES = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers(doc: dict) -> list[dict]:
    return doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])


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


@pytest.mark.parametrize(("file", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifests_are_valid_kubernetes(file, doc):
    if doc["apiVersion"].startswith("keda.sh/"):  # a CRD: check what KEDA needs of it
        assert doc["spec"]["scaleTargetRef"]["name"] in {d["metadata"]["name"] for _, d in documents()}
        return
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    for container in containers(doc):
        module = container["args"][0]
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{file}: no module {module}"
        for env in container.get("env", []):
            assert_setting_exists(env["name"])


def test_the_indexer_is_a_single_writer_and_the_config_is_valid():
    by_name = {doc["metadata"]["name"]: doc for _, doc in documents()}
    assert by_name["spectare-indexer"]["kind"] == "StatefulSet"
    assert by_name["spectare-indexer"]["spec"]["replicas"] == 1
    config = tomllib.loads(by_name["spectare-config"]["data"]["spectare.toml"])
    Settings(**{k: v for k, v in config.items() if k not in SECTIONS})
    for section, values in config.items():
        if section in SECTIONS:
            SECTIONS[section](**values)
    for key in by_name["spectare-s3"]["stringData"]:
        assert_setting_exists(key)


def test_the_dockerfile_copies_what_exists_and_installs_real_extras():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (?!--from=)(.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    for stage in re.findall(r"^COPY --from=(\S+)", dockerfile, re.M):
        assert stage in stages, f"COPY --from={stage}: no such build stage"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    default = re.search(r"^ARG EXTRAS=(\S+)", dockerfile, re.M).group(1)
    assert set(default.split(",")) <= set(extras), f"unknown extras in {default}"
    for variable in re.findall(r"\b(SPECTARE_[A-Z_]+)=", dockerfile):
        assert_setting_exists(variable)
