"""``agentorch deploy``: the commands it prints and runs, against fake ``gcloud``, ``sam`` and
``kubectl`` (tests/fakes/platform_cli.py) that record what they get and answer URLs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest

from emulator import deploy
from emulator.cli import main
from shared.config import REPO_ROOT
from shared.errors import ConfigError
from shared.manifest import load_manifest
from tests.fakes import platform_cli

pytestmark = pytest.mark.processes

MANIFEST = load_manifest()
AGENTS = [a.name for a in MANIFEST.agents]


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository copy with bundles, the fake CLIs first on PATH; the log of their calls."""
    platform_cli.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "deploy", root / "deploy")
    for function in MANIFEST.functions:
        bundle = root / deploy.BUNDLES / function.name
        bundle.mkdir(parents=True)
        (bundle / "main.py").write_text("def handler(event, context): ...\n")
    return log


def run_deploy(options: deploy.Options, log: Path) -> list[dict[str, object]]:
    root = log.parent / "repo"
    deploy.check_ready(options, MANIFEST, root)
    deploy.run(deploy.plan(MANIFEST, options, root), root, lambda line: None)
    return platform_cli.calls(log, root)


def deployed(calls: list[dict[str, object]]) -> list[str]:
    return [str(c["args"][2]) for c in calls if "deploy" in c["args"][:2]]  # type: ignore[index]


def test_cloud_run_deploys_the_gateway_and_agents_then_the_orchestrator_wired(
    fake_cli: Path,
) -> None:
    calls = run_deploy(deploy.Options("cloudrun", project="p", region="r"), fake_cli)
    names = deployed(calls)
    assert names[-1] == "orchestrator" and len(names) == len(MANIFEST.functions)
    orchestrator = calls[-1]["args"]
    assert isinstance(orchestrator, list)
    env = next(a for a in orchestrator if a.startswith("--set-env-vars="))
    assert f"GATEWAY_URL={platform_cli.url_of('model-gateway')}" in env
    for agent in MANIFEST.agents:
        service = agent.service.replace("_", "-")
        assert f"{agent.url_variable}={platform_cli.url_of(service)}" in env
    assert env.endswith(",OUTBOUND_AUTH=google")  # its identity on its calls to them
    assert "--allow-unauthenticated" in orchestrator and "--ingress=all" in orchestrator
    assert not any(a.startswith(("--network", "--subnet", "--vpc-egress")) for a in orchestrator)
    assert "--service-account=agentorch-orchestrator@p.iam.gserviceaccount.com" in orchestrator
    gateway = calls[0]["args"]
    assert isinstance(gateway, list)
    # private by IAM alone: reachable from an orchestrator with no VPC of its own
    assert "--ingress=all" in gateway and "--no-allow-unauthenticated" in gateway
    assert "--source=dist/functions/gateway" in gateway and "--function=gateway" in gateway
    assert any(a.startswith("--set-secrets=GATEWAY_API_KEYS=agentorch-gateway-api-keys:latest")
               for a in gateway)  # fmt: skip
    assert all(c["tool"] == "gcloud" and "--project=p" in c["args"] for c in calls)  # type: ignore[operator]


def test_cloud_functions_deploys_each_bundle_gen2(fake_cli: Path) -> None:
    calls = run_deploy(deploy.Options("functions", functions=("calculator",)), fake_cli)
    (call,) = calls
    args = call["args"]
    assert isinstance(args, list)
    assert args[:5] == ["functions", "deploy", "calculator-agent", "--gen2", "--runtime=python311"]
    assert "--entry-point=calculator" in args and "--trigger-http" in args
    assert "--ingress-settings=all" in args and "--no-allow-unauthenticated" in args


def test_internal_closes_the_callees_and_routes_the_orchestrator_through_the_vpc(
    fake_cli: Path,
) -> None:
    options = deploy.Options("cloudrun", internal=True, network="net", subnet="sub")
    argvs = [cast(list[str], c["args"]) for c in run_deploy(options, fake_cli)]
    *callees, orchestrator = [a for a in argvs if a[:2] == ["run", "deploy"]]
    for argv in callees:
        assert "--ingress=internal" in argv and "--no-allow-unauthenticated" in argv
        assert not any(a.startswith(("--network", "--vpc-egress")) for a in argv)
    i = orchestrator.index("--ingress=all")
    assert orchestrator[i : i + 4] == [
        "--ingress=all", "--network=net", "--subnet=sub", "--vpc-egress=all-traffic"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--internal"], "--internal needs --network NET"),
        (["--internal", "--subnet", "sub"], "--internal needs --network NET"),
        (["--network", "net"], "--network and --subnet go with --internal"),
    ],
)
def test_internal_without_a_network_is_refused_in_one_line_with_exit_2(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "cloudrun", "--dry-run", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not one command printed
    assert captured.err.startswith(f"agentorch: {says}") and captured.err.count("\n") == 1


def test_internal_is_refused_for_cloud_functions(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--internal", "--network", "net", "--dry-run"]
    assert main(["deploy", "functions", *flags]) == 2
    assert "--internal is for cloudrun" in capsys.readouterr().err


def test_the_orchestrator_alone_looks_the_others_urls_up(fake_cli: Path) -> None:
    calls = run_deploy(deploy.Options("functions", functions=("orchestrator",)), fake_cli)
    describes = [c for c in calls if "describe" in c["args"]]  # type: ignore[operator]
    assert len(describes) == 1 + len(AGENTS)
    assert deployed(calls) == ["orchestrator"]


def test_lambda_builds_and_deploys_the_sam_stack(fake_cli: Path) -> None:
    options = deploy.Options("lambda", region="eu-west-1", secrets=("TAVILY_API_KEY",))
    build, stack = run_deploy(options, fake_cli)
    assert build["args"] == ["build", "--template-file=deploy/sam/template.yaml"]
    args = stack["args"]
    assert isinstance(args, list)
    assert args[0] == "deploy" and "--region=eu-west-1" in args
    assert args[-1] == "TavilyApiKeySecret=agentorch-tavily-api-key"


def test_knative_applies_the_services_with_their_images_then_eventing(fake_cli: Path) -> None:
    options = deploy.Options("knative", image_repository="registry.test/acme", tag="v1.2.0")
    calls = run_deploy(options, fake_cli)
    files = [str(c["args"][2]).rsplit("/", 1)[-1] for c in calls]  # type: ignore[index]
    assert files[0] == "namespace.yaml" and files[-2:] == ["orchestrator.yaml", "eventing.yaml"]
    gateway = str(calls[1]["file"])
    assert "image: registry.test/acme/agentorch/gateway:v1.2.0" in gateway
    assert "${" not in "".join(str(c["file"]) for c in calls)


def test_a_failing_command_stops_the_deploy_naming_it(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_FAIL", "search-agent")
    with pytest.raises(
        ConfigError, match=r"`gcloud run deploy search-agent ...` failed \(exit 3\)"
    ):
        run_deploy(deploy.Options("cloudrun"), fake_cli)
    assert "orchestrator" not in deployed(platform_cli.calls(fake_cli))


def test_a_missing_bundle_is_refused_naming_the_command(fake_cli: Path) -> None:
    shutil.rmtree(fake_cli.parent / "repo" / deploy.BUNDLES / "search")
    with pytest.raises(ConfigError, match=r"for search: run `agentorch package`"):
        run_deploy(deploy.Options("cloudrun"), fake_cli)
    assert platform_cli.calls(fake_cli) == []


@pytest.mark.parametrize(("platform", "tool"), [("cloudrun", "gcloud"), ("lambda", "sam"),
                                                 ("knative", "kubectl")])  # fmt: skip
def test_a_missing_cli_is_refused_in_one_line_with_exit_2(
    platform: str, tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("IMAGE_REPOSITORY", "registry.test/acme")
    assert main(["deploy", platform]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentorch: {tool} is not on PATH") and err.count("\n") == 1


def test_dry_run_prints_the_commands_and_runs_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no CLI at all: a dry run needs none
    assert main(["deploy", "cloudrun", "calculator", "orchestrator", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gcloud run deploy calculator-agent ")
    assert lines[1].startswith("GATEWAY_URL=$(gcloud run services describe model-gateway ")
    assert '"--set-env-vars=GATEWAY_URL=$GATEWAY_URL,CALCULATOR_URL=$CALCULATOR_URL' in lines[-1]


def test_unknown_functions_and_lambda_subsets_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "cloudrun", "weather", "--dry-run"]) == 1
    assert "no function 'weather'" in capsys.readouterr().err
    assert main(["deploy", "lambda", "gateway", "--dry-run"]) == 1
    assert "one stack" in capsys.readouterr().err
