"""The deployment files agree with each other and with the services: compose, Dockerfiles, Kubernetes, Grafana.

No Docker engine or cluster is needed. `docker compose config` runs when a Compose v2 client is
found, and `kubectl kustomize` when kubectl is on PATH; otherwise those two tests are skipped.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from streamtune_anonymizer.handlers import ANONYMIZE_GROUP, SHARD_GROUP
from streamtune_ingestion.handlers import GROUP as INGESTION_GROUP
from streamtune_predictor.handlers import GROUP as PREDICTOR_GROUP
from streamtune_shared import streams
from streamtune_shared.group_metrics import LAG_COUNT_LIMIT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PORTS_FILE = ROOT / "deploy" / "compose.ports.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKER_DIR = ROOT / "deploy" / "docker"
K8S_DIR = ROOT / "deploy" / "k8s"
DASHBOARD = ROOT / "deploy" / "grafana" / "streamtune-dashboard.json"

PORTS = {"ingestion": 8081, "anonymizer": 8082, "trainer": 8083, "predictor": 8084}
SCALABLE = ("ingestion", "anonymizer", "predictor")
# The anonymizer serves the PII model (a token classifier), so it needs torch too.
TORCH_SERVICES = ("anonymizer", "trainer", "predictor")
# service -> (stream, consumer group) its ScaledObject must watch: the names the services consume with.
SCALED_GROUPS = {
    "ingestion": (streams.RAW, INGESTION_GROUP),
    "anonymizer": (streams.VALID, ANONYMIZE_GROUP),
    "predictor": (streams.CLEAN, PREDICTOR_GROUP),
}
# Every (stream, group) a scaled service reads; a trigger may watch any of them.
SCALED_SERVICE_GROUPS = {*SCALED_GROUPS.values(), (streams.CLEAN, SHARD_GROUP)}
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|AUTH|ROOT_USER")
# A secret may only be a reference without a default: ${VAR} or ${VAR:?message}.
SECRET_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*(:?\?[^}]*)?\}")
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?\?")
DUMMY_ENV = {"REDIS_PASSWORD": "dummy-redis-password", "S3_ACCESS_KEY": "dummy-access",
             "S3_SECRET_KEY": "dummy-secret-key", "ANONYMIZER_PSEUDONYM_KEY": "d" * 40}


def load_compose() -> dict:
    """docker-compose.yml as data (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict]:
    """The services of docker-compose.yml."""
    return load_compose()["services"]


def one_shot_services(services: dict[str, dict]) -> set[str]:
    """Services others wait to *complete* (minio-init): jobs, not daemons."""
    return {name for spec in services.values() for name, dep in (spec.get("depends_on") or {}).items()
            if dep.get("condition") == "service_completed_successfully"}


def healthcheck_command(spec: dict) -> str:
    """A service's healthcheck test as one string."""
    test = spec["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


# ---------------------------------------------------------------- docker-compose.yml


def test_compose_has_the_four_services_and_their_infrastructure():
    assert {"redis", "minio", "minio-init", *PORTS} <= set(compose_services())


def test_every_long_running_compose_service_has_a_healthcheck():
    services = compose_services()
    for name in set(services) - one_shot_services(services):
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_every_dependency_waits_for_health_or_completion():
    services = compose_services()
    for name, spec in services.items():
        depends_on = spec.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition"
        for target, dep in depends_on.items():
            condition = dep.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, f"{name} -> {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
            else:
                assert services[target].get("restart") == "no", f"{target} is a one-shot job and must not restart"


def test_scalable_services_have_no_container_name_and_no_host_ports():
    services = compose_services()
    for name in SCALABLE:
        assert "container_name" not in services[name], name
        assert not services[name].get("ports"), f"{name} publishes a host port, so it cannot be scaled"


def test_services_drain_on_sigterm_within_the_grace_period():
    services = compose_services()
    for name in PORTS:
        assert services[name].get("stop_grace_period") == "40s", name
        assert services[name].get("stop_signal", "SIGTERM") == "SIGTERM", name


def test_service_healthchecks_probe_healthz_on_the_service_port():
    services = compose_services()
    for name, port in PORTS.items():
        command = healthcheck_command(services[name])
        assert f"127.0.0.1:{port}/healthz" in command, name
        assert services[name]["environment"][f"{name.upper()}_HTTP_PORT"] == str(port)


def test_services_are_wired_to_redis_and_minio_by_service_name_and_log_json():
    services = compose_services()
    for name in PORTS:
        env = services[name]["environment"]
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD[^}]*\}@redis:6379/\d+", env["STREAMTUNE_REDIS_URL"]), name
        assert env["STREAMTUNE_S3_ENDPOINT"] == "minio:9000", name
        assert env["STREAMTUNE_LOG_FORMAT"] == "json", name
    assert "ANONYMIZER_PSEUDONYM_KEY" in services["anonymizer"]["environment"]


def test_services_are_built_from_their_dockerfile_at_the_repository_root():
    services = compose_services()
    for name in PORTS:
        build = services[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()


def secret_values(services: dict[str, dict]):
    """(where, value) of every environment entry whose name says it holds a secret."""
    for name, spec in services.items():
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        for key, value in env.items():
            if SECRET_NAME.search(key):
                yield f"{name}.{key}", value


def test_no_literal_secret_in_compose_environments():
    values = list(secret_values(compose_services()))
    assert values, "found no secret-like variable at all: the check is looking in the wrong place"
    for where, value in values:
        assert value is None or SECRET_REFERENCE.fullmatch(str(value)), f"{where} is not a ${{VAR}} reference"


def test_no_literal_secret_in_urls_or_commands():
    services = compose_services()
    for name, spec in services.items():
        for value in (spec.get("environment") or {}).values():
            for userinfo in re.findall(r"://([^/@\s]*)@", str(value or "")):
                assert re.fullmatch(r"(:?\$\{[^}]+\})*:?(\$\{[^}]+\})?", userinfo), f"{name}: literal URL credentials"
    command = services["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert SECRET_REFERENCE.fullmatch(password)


def env_example() -> dict[str, str]:
    """deploy/env.example as a dict."""
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_env_example_documents_every_required_variable_and_holds_no_secret():
    example = env_example()
    required = set(REQUIRED_VARIABLE.findall(COMPOSE_FILE.read_text()))
    assert {"REDIS_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY", "ANONYMIZER_PSEUDONYM_KEY"} <= required
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    for variable in required:
        assert variable in example, f"{variable} is required by docker-compose.yml but missing from env.example"
        assert example[variable] == "", f"env.example gives {variable} a value: it must stay empty"
        assert variable in header, f"{variable} is not documented at the top of docker-compose.yml"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f"env.example holds a value for {key}"


def test_ports_override_only_touches_existing_services_and_binds_loopback_by_default():
    services = compose_services()
    override = yaml.safe_load(PORTS_FILE.read_text())["services"]
    assert set(override) <= set(services)
    for name, spec in override.items():
        for mapping in spec["ports"]:
            assert mapping.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name}: {mapping}"


def compose_command() -> list[str] | None:
    """A Compose v2 client: the docker CLI plugin, else a standalone docker-compose v2."""
    candidates = [["docker", "compose"]] if shutil.which("docker") else []
    standalone = shutil.which("docker-compose") or shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if standalone:
        candidates.append([standalone])
    for command in candidates:
        version = subprocess.run([*command, "version"], capture_output=True, text=True)
        if version.returncode == 0 and re.search(r"Docker Compose version v?([2-9]|\d{2,})\.", version.stdout):
            return command
    return None


def run_compose_config(env: dict[str, str], *files: Path) -> subprocess.CompletedProcess:
    """`compose config -q` over the given files, with only ``env`` (and PATH) in the environment."""
    command = compose_command()
    if command is None:
        pytest.skip("no Compose v2 client: neither the `docker compose` plugin nor a docker-compose v2 on PATH")
    args = [arg for path in files for arg in ("-f", str(path))]
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([*command, "--project-directory", str(ROOT), *args, "config", "-q"],
                          capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=60)


def test_docker_compose_config_validates_with_dummy_secrets():
    result = run_compose_config(DUMMY_ENV, COMPOSE_FILE, PORTS_FILE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_refuses_to_run_without_the_secrets():
    result = run_compose_config({k: v for k, v in DUMMY_ENV.items() if k != "REDIS_PASSWORD"}, COMPOSE_FILE)
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr


# ---------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/docker/<name>.Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (DOCKER_DIR / f"{name}.Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions after the last FROM: what the image runs with."""
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def resolved_base_images(instructions: list[tuple[str, str]]) -> list[str]:
    """The image of every FROM, with ARG defaults declared before the first FROM substituted."""
    defaults = {}
    for op, args in instructions:
        if op == "FROM":
            break
        if op == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            defaults[key] = value
    images = [args.split()[0] for op, args in instructions if op == "FROM"]
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image) for image in images]


@pytest.mark.parametrize("name", PORTS)
def test_dockerfile_builds_on_python_slim_and_runs_as_non_root(name):
    instructions = dockerfile_instructions(name)
    assert set(resolved_base_images(instructions)) == {"python:3.11-slim"}
    users = [args for op, args in final_stage(instructions) if op == "USER"]
    assert users, f"{name}: the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{name}: USER must be a numeric non-root uid, got {users[-1]}"


@pytest.mark.parametrize("name", PORTS)
def test_dockerfile_serves_its_port_checks_healthz_and_runs_the_module(name):
    stage = final_stage(dockerfile_instructions(name))
    port = PORTS[name]
    assert ("EXPOSE", str(port)) in stage
    assert any(op == "ENV" and f"{name.upper()}_HTTP_PORT={port}" in args for op, args in stage)
    healthchecks = [args for op, args in stage if op == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[0] and "python" in healthchecks[0]
    assert "curl" not in healthchecks[0] and "wget" not in healthchecks[0]
    commands = [json.loads(args) for op, args in stage if op == "CMD"]
    assert commands == [["python", "-m", f"streamtune_{name}"]]


@pytest.mark.parametrize("name", PORTS)
def test_dockerfile_copies_only_shared_and_its_own_service(name):
    for op, args in dockerfile_instructions(name):
        if op in {"COPY", "ADD"} and "--from=" not in args:
            sources = args.split()[:-1]
            assert op == "COPY" and set(sources) <= {"shared", f"services/{name}"}, f"{name}: {op} {args}"


@pytest.mark.parametrize("name", PORTS)
def test_only_model_serving_images_install_torch(name):
    runs = " ".join(args for op, args in dockerfile_instructions(name) if op == "RUN")
    if name in TORCH_SERVICES:
        assert re.search(r"pip install \"?torch==\$\{TORCH_VERSION\}\"? --index-url \"?\$\{TORCH_INDEX_URL\}", runs)
        args = dict(a.split("=", 1) for op, a in dockerfile_instructions(name) if op == "ARG" and "=" in a)
        assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    else:
        assert "torch" not in runs, f"{name} installs torch"


@pytest.mark.parametrize("name", [n for n in PORTS if n not in TORCH_SERVICES])
def test_services_without_torch_do_not_depend_on_it(name):
    for pyproject in (ROOT / "shared" / "pyproject.toml", ROOT / "services" / name / "pyproject.toml"):
        if not pyproject.is_file():
            pytest.skip(f"{pyproject.relative_to(ROOT)} is not written yet")
        project = tomllib.loads(pyproject.read_text())["project"]
        declared = [*project.get("dependencies", []),
                    *(r for extra in project.get("optional-dependencies", {}).values() for r in extra)]
        assert not [r for r in declared if Requirement(r).name == "torch"], f"{pyproject} pulls in torch"


def file_imports(path: Path, in_shared: bool) -> tuple[set[str], set[str]]:
    """(third-party top-level modules, streamtune_shared submodules) that one file imports."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party, shared = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            # Inside shared, `from . import bus` and `from .bus import X` name shared modules.
            if in_shared:
                shared |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            continue
        elif isinstance(node, ast.ImportFrom) and node.module == "streamtune_shared":
            shared |= {alias.name for alias in node.names}
            continue
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top, _, rest = module.partition(".")
            if top == "streamtune_shared":
                shared.add(rest.split(".")[0])
            elif top not in stdlib and not top.startswith("streamtune_"):
                third_party.add(top)
    return third_party, shared


def imported_modules(package_dir: Path) -> dict[str, str]:
    """Third-party modules imported by a service package and the shared modules it uses, each with a file."""
    shared_dir = ROOT / "shared" / "streamtune_shared"
    found: dict[str, str] = {}
    todo = [*sorted(package_dir.rglob("*.py")), shared_dir / "__init__.py"]
    done: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in done or not path.is_file():
            continue
        done.add(path)
        third_party, shared = file_imports(path, in_shared=path.parent == shared_dir)
        for module in third_party:
            found.setdefault(module, str(path.relative_to(ROOT)))
        todo += [shared_dir / f"{name}.py" for name in shared]
    return found


def requirement_closure(requirements: list[str]) -> set[str]:
    """Normalized names of every distribution pip would install for these requirements (per installed metadata)."""
    marker_env = {"python_version": "3.11", "python_full_version": "3.11.9", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "os_name": "posix"}
    seen: set[str] = set()
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({**marker_env, "extra": extra}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        extras = set(requirement.extras)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for chosen_extra in ["", *extras]:
            pending.extend((Requirement(r), chosen_extra) for r in requires)
    return {key.split("[")[0] for key in seen}


def declared_requirements(pyproject: Path) -> list[str]:
    """The dependencies of a pyproject.toml, the local streamtune-shared turned into its own requirements."""
    requirements = []
    for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.name != "streamtune-shared":
            requirements.append(line)
            continue
        shared = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
        requirements += shared["dependencies"]
        for extra in requirement.extras:
            requirements += shared["optional-dependencies"][extra]
    return requirements


@pytest.mark.parametrize("name", list(PORTS))
def test_image_installs_every_distribution_its_code_imports(name):
    pyproject = ROOT / "services" / name / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip(f"services/{name} is not written yet")
    installed = requirement_closure(declared_requirements(pyproject))
    providers = metadata.packages_distributions()
    imports = imported_modules(ROOT / "services" / name / f"streamtune_{name}")
    missing = {module: where for module, where in imports.items()
               if not {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])} & installed}
    assert not missing, f"the {name} image would lack the distributions of: {missing}"


# ---------------------------------------------------------------- .dockerignore


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins, parents count)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, glob_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A Docker ignore pattern as a regex: ** spans directories, * and ? stay within one."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        else:
            char = pattern[i]
            regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
            i += 1
    return re.compile(regex)


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", ".stack/credentials.env", ".env", "tests/fixtures/clinical_notes.jsonl",
    "services/ingestion/tests/unit/test_x.py", "shared/tests/test_bus.py", "docs/dev/x.md",
    "services/anonymizer/benchmarks/bench_redaction.py",
    "shared/streamtune_shared/__pycache__/bus.cpython-311.pyc", "services/trainer/streamtune_trainer.egg-info/PKG-INFO",
])
def test_dockerignore_keeps_local_state_tests_and_caches_out(path):
    assert dockerignore_excludes(path)


@pytest.mark.parametrize("path", [
    "shared/pyproject.toml", "shared/streamtune_shared/bus.py", "services/trainer/pyproject.toml",
    "services/predictor/streamtune_predictor/app.py", "deploy/docker/ingestion.Dockerfile",
])
def test_dockerignore_lets_the_sources_in(path):
    assert not dockerignore_excludes(path)


# ---------------------------------------------------------------- Kubernetes


def k8s_documents() -> list[dict]:
    """Every Kubernetes object in deploy/k8s/*.yaml (the kustomization is none)."""
    paths = sorted(set(K8S_DIR.glob("*.yaml")) - {K8S_DIR / "kustomization.yaml"})
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects(kind: str) -> dict[str, dict]:
    """Objects of one kind, by name."""
    return {doc["metadata"]["name"]: doc for doc in k8s_documents() if doc["kind"] == kind}


def only_container(deployment: dict) -> dict:
    """The single container of a Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_k8s_manifests_are_namespace_less_and_listed_in_the_kustomization():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files
    assert "namespace" not in kustomization
    assert all("namespace" not in doc["metadata"] for doc in k8s_documents())


def test_k8s_has_a_deployment_and_a_service_per_service():
    deployments, services = k8s_objects("Deployment"), k8s_objects("Service")
    for name, port in PORTS.items():
        deployment, service = deployments[f"streamtune-{name}"], services[f"streamtune-{name}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert [p["port"] for p in service["spec"]["ports"]] == [port]


@pytest.mark.parametrize("name", PORTS)
def test_k8s_deployment_probes_drain_and_scrape(name):
    deployment = k8s_objects("Deployment")[f"streamtune-{name}"]
    pod = deployment["spec"]["template"]
    container = only_container(deployment)
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": PORTS[name]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 40
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(PORTS[name])
    assert annotations["prometheus.io/path"] == "/metrics"
    assert {"name": f"{name.upper()}_HTTP_PORT", "value": str(PORTS[name])} in container["env"]


@pytest.mark.parametrize("name", PORTS)
def test_k8s_pods_run_as_non_root_with_resources(name):
    deployment = k8s_objects("Deployment")[f"streamtune-{name}"]
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    container = only_container(deployment)
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def secret_key_refs(container: dict) -> list[dict]:
    """Every secretKeyRef in a container's env."""
    return [entry["valueFrom"]["secretKeyRef"] for entry in container.get("env", [])
            if "secretKeyRef" in entry.get("valueFrom", {})]


@pytest.mark.parametrize("name", PORTS)
def test_k8s_settings_come_from_the_configmap_and_the_secret(name):
    container = only_container(k8s_objects("Deployment")[f"streamtune-{name}"])
    configmap = k8s_objects("ConfigMap")["streamtune-config"]
    secret_keys = set(yaml.safe_load((K8S_DIR / "secret.example.yaml").read_text())["stringData"])
    assert {"configMapRef": {"name": "streamtune-config"}} in container["envFrom"]
    refs = secret_key_refs(container)
    assert refs and all(ref["name"] == "streamtune-secrets" and ref["key"] in secret_keys for ref in refs)
    env = {e["name"]: e for e in container["env"]}
    for variable in ("STREAMTUNE_S3_ACCESS_KEY", "STREAMTUNE_S3_SECRET_KEY", "REDIS_PASSWORD"):
        assert "secretKeyRef" in env[variable]["valueFrom"], variable
    # $(VAR) references must name variables defined before use, or the literal text reaches the app.
    defined = set(configmap["data"])
    for entry in container["env"]:
        for reference in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
            assert reference in defined, f"{entry['name']} uses $({reference}) before it is defined"
        defined.add(entry["name"])
    assert ("ANONYMIZER_PSEUDONYM_KEY" in env) == (name == "anonymizer")


def test_k8s_secret_example_holds_placeholders_only():
    secret = yaml.safe_load((K8S_DIR / "secret.example.yaml").read_text())
    assert set(secret["stringData"]) == {"REDIS_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY", "ANONYMIZER_PSEUDONYM_KEY"}
    assert set(secret["stringData"].values()) == {"change-me"}
    assert "data" not in secret


def test_k8s_trainer_is_a_single_replica_never_doubled_by_a_rollout():
    trainer = k8s_objects("Deployment")["streamtune-trainer"]
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"]["type"] == "Recreate"
    scaled_targets = {so["spec"]["scaleTargetRef"]["name"] for so in k8s_objects("ScaledObject").values()}
    assert "streamtune-trainer" not in scaled_targets


@pytest.mark.parametrize("name", SCALED_GROUPS)
def test_k8s_scaled_object_targets_its_deployment_with_redis_streams_triggers(name):
    scaled = k8s_objects("ScaledObject")[f"streamtune-{name}"]
    deployment = k8s_objects("Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count of a scaled Deployment"
    triggers = scaled["spec"]["triggers"]
    assert triggers and all(t["type"] == "redis-streams" for t in triggers)
    stream, group = SCALED_GROUPS[name]
    main = [t["metadata"] for t in triggers
            if (t["metadata"]["stream"], t["metadata"]["consumerGroup"]) == (stream, group)]
    assert any("pendingEntriesCount" in m for m in main) and any("lagCount" in m for m in main)
    auths = k8s_objects("TriggerAuthentication")
    container_env = {e["name"] for e in only_container(deployment)["env"]}
    container_env |= set(k8s_objects("ConfigMap")["streamtune-config"]["data"])
    for trigger in triggers:
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), "KEDA metadata values are strings"
        assert trigger["authenticationRef"]["name"] in auths
        assert trigger["metadata"]["addressFromEnv"] in container_env


def test_k8s_triggers_watch_real_groups_with_a_lag_threshold_the_lag_gauge_can_reach():
    for scaled in k8s_objects("ScaledObject").values():
        triggers = [t["metadata"] for t in scaled["spec"]["triggers"]]
        assert {(m["stream"], m["consumerGroup"]) for m in triggers} <= SCALED_SERVICE_GROUPS
        lag_counts = [int(m["lagCount"]) for m in triggers if "lagCount" in m]
        assert lag_counts, f"{scaled['metadata']['name']} has no lagCount trigger"
        # streamtune_consumer_group_lag counts at most LAG_COUNT_LIMIT when Redis cannot tell the lag.
        assert all(0 < count <= LAG_COUNT_LIMIT for count in lag_counts)


def test_k8s_trigger_authentication_reads_the_redis_password_from_the_secret():
    secret_keys = set(yaml.safe_load((K8S_DIR / "secret.example.yaml").read_text())["stringData"])
    for auth in k8s_objects("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "streamtune-secrets" and ref["key"] in secret_keys


def test_kubectl_kustomize_builds_the_manifests():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not on PATH")
    result = subprocess.run(["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert kinds.count("Deployment") == 4 and kinds.count("ScaledObject") == 3


# ---------------------------------------------------------------- Grafana


DASHBOARD_METRICS = {
    "streamtune_entries_total": "shared",
    "streamtune_entries_reclaimed_total": "shared",
    "streamtune_batch_failures_total": "shared",
    "streamtune_ingestion_events_total": "ingestion",
    "streamtune_anonymizer_redactions_total": "anonymizer",
    "streamtune_predictor_predictions_total": "predictor",
    "streamtune_predictor_latency_seconds": "predictor",
}


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_dashboard_panels_are_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_shows_every_pipeline_metric_and_latency_quantiles():
    expressions = " ".join(dashboard_expressions())
    for metric in DASHBOARD_METRICS:
        assert metric in expressions, metric
    for quantile in ("0.5", "0.99"):
        buckets = "rate(streamtune_predictor_latency_seconds_bucket"
        assert f"histogram_quantile({quantile}, sum by (le) ({buckets}" in expressions


@pytest.mark.parametrize("metric", DASHBOARD_METRICS)
def test_dashboard_metrics_are_defined_by_the_code(metric):
    owner = DASHBOARD_METRICS[metric]
    package = (ROOT / "shared" / "streamtune_shared" if owner == "shared"
               else ROOT / "services" / owner / f"streamtune_{owner}")
    if not package.is_dir():
        pytest.skip(f"{package.relative_to(ROOT)} is not written yet")
    source = "\n".join(p.read_text() for p in package.rglob("*.py"))
    # prometheus_client appends _total to counters, so the code may name either form.
    base = metric.removesuffix("_total")
    assert re.search(rf"[\"']{base}(_total)?[\"']", source), f"{metric} is not defined in {package.relative_to(ROOT)}"


# prometheus_client's exposed series per metric type (a Counter's name may carry _total or not).
EXPOSED_SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count"),
                    "Summary": ("", "_sum", "_count")}
METRIC_DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"'](streamtune_[a-z0-9_]+)[\"']")


def exposed_metric_names() -> set[str]:
    """Every series name the services' and shared's metric definitions expose, found in their sources."""
    sources = [p for folder in (ROOT / "shared", ROOT / "services") for p in folder.rglob("*.py")
               if "tests" not in p.relative_to(ROOT).parts]
    names = set()
    for path in sources:
        for kind, name in METRIC_DEFINITION.findall(path.read_text()):
            base = name.removesuffix("_total") if kind == "Counter" else name
            names |= {base + suffix for suffix in EXPOSED_SUFFIXES[kind]}
    return names


def test_every_metric_a_panel_queries_is_exposed_by_the_code():
    exposed = exposed_metric_names()
    queried = {name for expr in dashboard_expressions() for name in re.findall(r"streamtune_[a-z0-9_]+", expr)}
    assert queried and queried <= exposed, f"not defined in shared/ or services/: {sorted(queried - exposed)}"


@pytest.mark.parametrize("metric", [
    "streamtune_consumer_group_lag", "streamtune_consumer_group_pending", "streamtune_predictor_model_info",
    "streamtune_predictor_shadow_agreement_sum_total", "streamtune_predictor_shadow_compared_total",
    "streamtune_batch_size_sum",
])
def test_dashboard_shows_backlog_versions_and_rollouts(metric):
    assert any(metric in expr for expr in dashboard_expressions())


def test_dashboard_panels_do_not_overlap():
    boxes = [p["gridPos"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    cells = [(x, y) for b in boxes for x in range(b["x"], b["x"] + b["w"]) for y in range(b["y"], b["y"] + b["h"])]
    assert len(cells) == len(set(cells)) and all(b["x"] + b["w"] <= 24 for b in boxes)
