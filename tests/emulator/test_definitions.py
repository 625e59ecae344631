"""deploy/: the Cloud Run services, the SAM template and the Knative resources, as generated
from functions.yaml and the settings (tests/test_manifest.py checks that they are current).

The SAM template is checked by cfn-lint itself (its Python API, once for the module); the
Cloud Run and Knative YAML by the strict models of tests/emulator/platform_schemas.py (its
docstring says why not a published schema).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emulator import definitions
from shared.config import REPO_ROOT, read_yaml
from shared.manifest import load_manifest, parse_manifest
from tests.emulator import platform_schemas as schemas

MANIFEST = load_manifest()
DEPLOY = REPO_ROOT / "deploy"


def _load(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.fixture(scope="module")
def cfn_lint_problems() -> list[str]:
    from cfnlint.api import ManualArgs, lint_file  # 2.5 s: only the worker that runs this

    matches = lint_file(DEPLOY / "sam" / "template.yaml", ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches]


def test_cfn_lint_finds_nothing_in_the_sam_template(cfn_lint_problems: list[str]) -> None:
    assert cfn_lint_problems == []


def test_the_sam_template_wires_urls_secrets_and_the_queue() -> None:
    template = yaml.safe_load((DEPLOY / "sam" / "template.yaml").read_text(encoding="utf-8"))
    resources = template["Resources"]
    orchestrator = resources["Orchestrator"]["Properties"]
    assert orchestrator["FunctionUrlConfig"] == {"AuthType": "NONE"}
    variables = orchestrator["Environment"]["Variables"]
    assert variables["GATEWAY_URL"] == {"Fn::GetAtt": "GatewayUrl.FunctionUrl"}
    for agent in MANIFEST.agents:
        name = definitions_id(agent.name)
        assert variables[agent.url_variable] == {"Fn::GetAtt": f"{name}Url.FunctionUrl"}
        assert resources[name]["Properties"]["FunctionUrlConfig"] == {"AuthType": "AWS_IAM"}
        assert resources[name]["Properties"]["CodeUri"] == f"../../dist/functions/{agent.name}/"
    assert variables["OUTBOUND_AUTH"] == "aws_sigv4"  # its role signs its calls to them
    tasks = orchestrator["Events"]["Tasks"]["Properties"]
    assert tasks["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    key = resources["Tavily"]["Properties"]["Environment"]["Variables"]["TAVILY_API_KEY"]
    assert "{{resolve:secretsmanager:${TavilyApiKeySecret}:SecretString}}" in str(key)
    assert "AWS_REGION" not in str(template["Resources"])  # Lambda's own: may not be set


def definitions_id(name: str) -> str:
    from emulator.sam import logical_id

    return logical_id(name)


@pytest.mark.parametrize("function", MANIFEST.functions, ids=lambda f: f.name)
def test_each_cloud_run_service_is_valid_and_private_but_the_orchestrator(function) -> None:  # type: ignore[no-untyped-def]
    path = DEPLOY / "cloudrun" / f"{definitions.service_name(function)}.yaml"
    (document,) = _load(path)
    service = schemas.CloudRunService.model_validate(document)
    # private by IAM, reachable without a VPC: "internal" is DEPLOY.md's opt-in hardening
    assert service.metadata.annotations["run.googleapis.com/ingress"] == "all"
    assert "run.googleapis.com/network-interfaces" not in path.read_text(encoding="utf-8")
    container = service.spec.template.spec.containers[0]
    assert container.ports[0].containerPort == function.container_port
    assert container.image == f"${{IMAGE_REPOSITORY}}/{function.image}:${{TAG}}"
    secrets = {e.name for e in container.env if e.valueFrom}
    literal = {e.name: e.value for e in container.env if e.value and not e.value.startswith("${")}
    assert literal == definitions.identity_env(function, "google")  # the orchestrator's alone
    assert secrets == {v.name for v in definitions.deployed_secrets(function, MANIFEST)}


@pytest.mark.parametrize("function", MANIFEST.functions, ids=lambda f: f.name)
def test_each_knative_service_is_valid(function) -> None:  # type: ignore[no-untyped-def]
    (document,) = _load(DEPLOY / "knative" / f"{definitions.service_name(function)}.yaml")
    service = schemas.KnativeService.model_validate(document)
    private = service.metadata.labels.get("networking.knative.dev/visibility") == "cluster-local"
    assert private == (function.kind != "orchestrator")


def test_the_knative_eventing_feeds_the_orchestrator_and_sets_its_sink() -> None:
    broker, binding, trigger = _load(DEPLOY / "knative" / "eventing.yaml")
    schemas.Broker.model_validate(broker)
    sink = schemas.SinkBinding.model_validate(binding)
    feed = schemas.Trigger.model_validate(trigger)
    assert sink.spec.subject.name == feed.spec.subscriber.ref.name == "orchestrator"
    assert feed.spec.filter.attributes == {"type": definitions.TASK_EVENT_TYPE}
    (document,) = _load(DEPLOY / "knative" / "orchestrator.yaml")
    container = schemas.KnativeService.model_validate(document).spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert env["GATEWAY_URL"] == "http://model-gateway.agentorch.svc.cluster.local"
    assert "K_SINK" not in env  # the SinkBinding sets it


@pytest.mark.parametrize(
    "broken",
    [
        {"containerConcurrency": 5000},
        {"timeoutSeconds": 0},
        {"containers": [{"image": "x", "ports": [{"containerPort": 8080}]}]},
        {"containerConcurency": 80},
    ],
)
def test_the_schema_refuses_what_the_platform_would(broken: dict[str, object]) -> None:
    (document,) = _load(DEPLOY / "cloudrun" / "orchestrator.yaml")
    document["spec"]["template"]["spec"].update(broken)  # type: ignore[index]
    with pytest.raises(ValueError):
        schemas.CloudRunService.model_validate(document)


def test_a_new_agent_gets_its_definitions_with_no_edit() -> None:
    data = read_yaml(REPO_ROOT / "functions.yaml")
    extra = {
        **data["functions"][2],
        "name": "weather",
        "target": "weather",
        "port": 8099,
        "service": "weather-agent",
        "image": "agentorch/weather",
        "source": "functions/agents/weather",
        "extra": None,
    }
    manifest = parse_manifest({**data, "functions": [*data["functions"], extra]}, Path("x"))
    files = definitions.files(manifest)
    assert "deploy/cloudrun/weather-agent.yaml" in files
    assert "WEATHER_URL" in files["deploy/cloudrun/orchestrator.yaml"]
    assert "WeatherUrl.FunctionUrl" in files["deploy/sam/template.yaml"]
    assert (
        "http://weather-agent.agentorch.svc.cluster.local"
        in files["deploy/knative/orchestrator.yaml"]
    )
