"""``agentorch deploy PLATFORM [FUNCTION...]``: the commands that deploy the functions, printed
(``--dry-run``) or run, in dependency order: the gateway and the agents first, then the
orchestrator with each one's URL in its environment (``GATEWAY_URL``, ``<NAME>_URL``).

- ``cloudrun``: ``gcloud run deploy`` of each bundle (``--source dist/functions/<name>
  --function <target>``), or of its image with ``--image-repository``;
- ``functions``: ``gcloud functions deploy --gen2`` of each bundle;
- ``lambda``: ``sam build`` and ``sam deploy`` of deploy/sam/template.yaml (one stack: the
  template wires the URLs itself);
- ``knative``: ``kubectl apply`` of deploy/knative/, its images filled in (``dist/deploy/``).

The gateway and the agents are private by IAM alone (``--no-allow-unauthenticated``, ingress
``all``): the orchestrator reaches their ``run.app`` URLs with its ID tokens and no network of
its own. ``--internal --network NET`` (cloudrun) also closes their ingress to the VPC, and so
gives the orchestrator Direct VPC egress through NET, without which its calls would be refused.

The bundles are ``agentorch package``'s (``dist/functions/<name>/``); the variables and
secrets are the environment contract's (emulator/contract.py), as in deploy/.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from emulator import definitions
from emulator.contract import function_variables
from shared.errors import AgentOrchestratorError, ConfigError
from shared.manifest import Function, Manifest

PLATFORMS = ("cloudrun", "functions", "lambda", "knative")
TOOLS = {"cloudrun": "gcloud", "functions": "gcloud", "lambda": "sam", "knative": "kubectl"}
INSTALL = {
    "gcloud": "install the Google Cloud CLI (cloud.google.com/sdk)",
    "sam": "install the AWS SAM CLI (pip install aws-sam-cli)",
    "kubectl": "install kubectl and point it at a cluster with Knative",
}
BUNDLES = Path("dist/functions")
RENDERED = Path("dist/deploy")
RUNTIME = "python311"
STACK = "agentorch"


class Refused(AgentOrchestratorError):
    """``agentorch deploy`` cannot start as asked: it exits 2, like a usage error."""

    exit_code = 2


class ToolMissing(Refused):
    """The platform's command-line tool is not on PATH."""


@dataclass(frozen=True)
class Options:
    platform: str
    functions: tuple[str, ...] = ()
    project: str | None = None
    region: str | None = None
    image_repository: str | None = None
    tag: str = "latest"
    secrets: tuple[str, ...] = ()
    """Optional secret variables to add (``ANTHROPIC_AUTH_TOKEN``); the required ones always are."""
    internal: bool = False
    """cloudrun: the gateway and the agents take only internal traffic (ingress ``internal``)."""
    network: str | None = None
    """With ``internal``: the VPC network the orchestrator's traffic goes out through."""
    subnet: str | None = None
    """Its subnet (default: the one named as the network)."""


@dataclass
class Step:
    """One command; ``capture``: the variable its output (a URL) is kept in for later steps."""

    argv: list[str]
    capture: str | None = None

    def shell(self) -> str:
        text = " ".join(_quote(arg) for arg in self.argv)
        return f"{self.capture}=$({text})" if self.capture else text


def _quote(arg: str) -> str:
    # "$GATEWAY_URL" stays expandable when the printed line is pasted into a shell.
    return f'"{arg}"' if "$" in arg and "'" not in arg and '"' not in arg else shlex.quote(arg)


def ordered(manifest: Manifest, names: Sequence[str]) -> list[Function]:
    """The functions named (all when none), the orchestrator last."""
    known = [f.name for f in manifest.functions]
    for name in names:
        if name not in known:
            raise ConfigError(f"no function {name!r} (functions: {', '.join(known)})")
    chosen = [f for f in manifest.functions if not names or f.name in names]
    return sorted(chosen, key=lambda f: f.kind == "orchestrator")


def plan(manifest: Manifest, options: Options, root: Path) -> list[Step]:
    _check_network(options)
    planner = {
        "cloudrun": _gcloud,
        "functions": _gcloud,
        "lambda": _sam,
        "knative": _knative,
    }[options.platform]
    return planner(manifest, options, root)


def _check_network(options: Options) -> None:
    """Internal ingress only with the orchestrator's way into the VPC, which admits its calls."""
    if options.internal and options.platform != "cloudrun":
        raise Refused(f"--internal is for cloudrun, not {options.platform}")
    if options.internal and not options.network:
        raise Refused(
            "--internal needs --network NET [--subnet SUBNET]: without VPC egress the "
            "orchestrator's calls to the internal services would be refused"
        )
    if not options.internal and (options.network or options.subnet):
        raise Refused("--network and --subnet go with --internal")


def _ingress(private: bool, options: Options) -> list[str]:
    """Private services: IAM always, the network too with ``--internal``; the orchestrator
    then sends everything through the VPC, so its calls to them count as internal."""
    if private:
        return ["--ingress=internal" if options.internal else "--ingress=all"]
    if not options.internal:
        return ["--ingress=all"]
    subnet = [f"--subnet={options.subnet}"] if options.subnet else []
    return ["--ingress=all", f"--network={options.network}", *subnet, "--vpc-egress=all-traffic"]


def _scope(options: Options, flag: str = "--region") -> list[str]:
    scope = [f"--project={options.project}"] if options.project else []
    return scope + ([f"{flag}={options.region}"] if options.region else [])


def _gcloud(manifest: Manifest, options: Options, root: Path) -> list[Step]:
    steps = []
    for function in ordered(manifest, options.functions):
        wired = [v for v in function_variables(function, manifest) if v.wired]
        for variable in wired:
            callee = manifest.function(str(variable.wired))
            steps.append(Step(_describe(callee, options), capture=variable.name))
        pairs = [f"{v.name}=${v.name}" for v in wired]
        pairs += [f"{k}={v}" for k, v in definitions.identity_env(function, "google").items()]
        env = ",".join(pairs)
        steps.append(Step(_deploy(function, manifest, options, env)))
    return steps


def _describe(function: Function, options: Options) -> list[str]:
    name = definitions.service_name(function)
    if options.platform == "functions":
        head = ["gcloud", "functions", "describe", name, "--gen2"]
        return [*head, *_scope(options), "--format=value(serviceConfig.uri)"]
    return ["gcloud", "run", "services", "describe", name, *_scope(options),
            "--format=value(status.url)"]  # fmt: skip


def _deploy(function: Function, manifest: Manifest, options: Options, env: str) -> list[str]:
    name, private = definitions.service_name(function), not definitions.public(function)
    limits = manifest.limits(function)
    secrets = [
        v for v in function_variables(function, manifest)
        if v.secret and (v in definitions.deployed_secrets(function, manifest)
                         or v.name in options.secrets)
    ]  # fmt: skip
    source = str(BUNDLES / function.name)
    if options.platform == "functions":
        argv = ["gcloud", "functions", "deploy", name, "--gen2", f"--runtime={RUNTIME}",
                f"--source={source}", f"--entry-point={function.target}", "--trigger-http",
                "--ingress-settings=all",
                f"--timeout={definitions.TIMEOUT_S}s"]  # fmt: skip
    else:
        if options.image_repository:
            image = f"--image={options.image_repository}/{function.image}:{options.tag}"
            what = [image, f"--port={function.container_port}"]
        else:
            what = [f"--source={source}", f"--function={function.target}",
                    f"--base-image={RUNTIME}"]  # fmt: skip
        argv = ["gcloud", "run", "deploy", name, *what,
                *_ingress(private, options),
                f"--concurrency={definitions.CONCURRENCY}",
                f"--timeout={definitions.TIMEOUT_S}",
                f"--max-instances={definitions.MAX_SCALE}"]  # fmt: skip
    argv += [
        f"--memory={definitions.cloud_memory(limits.memory)}",
        f"--cpu={definitions.cloud_run_cpu(limits.cpus)}",
        "--no-allow-unauthenticated" if private else "--allow-unauthenticated",
        *_scope(options),
    ]
    if not private and options.project:  # its identity, which may invoke the private ones
        argv.append(f"--service-account={definitions.orchestrator_account(options.project)}")
    if secrets:
        pairs = [f"{v.name}={definitions.secret_name(v)}:latest" for v in secrets]
        argv.append("--set-secrets=" + ",".join(pairs))
    if env:
        argv.append(f"--set-env-vars={env}")
    return argv


def _sam(manifest: Manifest, options: Options, root: Path) -> list[Step]:
    if options.functions:
        raise ConfigError(
            "lambda deploys every function as one stack (deploy/sam/template.yaml): "
            "name no function"
        )
    from emulator.sam import parameter

    template = "deploy/sam/template.yaml"
    overrides = []
    for function in manifest.functions:
        for variable in function_variables(function, manifest):
            if variable.secret and variable.name in options.secrets:
                override = f"{parameter(variable)}={definitions.secret_name(variable)}"
                if override not in overrides:
                    overrides.append(override)
    region = [f"--region={options.region}"] if options.region else []
    deploy = ["sam", "deploy", "--template-file=.aws-sam/build/template.yaml",
              f"--stack-name={STACK}", "--capabilities=CAPABILITY_IAM", "--resolve-s3",
              "--no-confirm-changeset", "--no-fail-on-empty-changeset", *region]  # fmt: skip
    if overrides:
        deploy += ["--parameter-overrides", " ".join(overrides)]
    return [Step(["sam", "build", f"--template-file={template}"]), Step(deploy)]


def _knative(manifest: Manifest, options: Options, root: Path) -> list[Step]:
    if not options.image_repository:
        raise ConfigError("knative needs --image-repository: where the images were pushed")
    functions = ordered(manifest, options.functions)
    files = [f"deploy/knative/{definitions.service_name(f)}.yaml" for f in functions]
    if any(f.kind == "orchestrator" for f in functions):
        files.append("deploy/knative/eventing.yaml")
    values = {"IMAGE_REPOSITORY": options.image_repository, "TAG": options.tag}
    texts = {"namespace.yaml": NAMESPACE_YAML.format(namespace=definitions.NAMESPACE)}
    for file in files:
        text = (root / file).read_text(encoding="utf-8")
        texts[Path(file).name] = Template(text).safe_substitute(values)
    steps = []
    for name, text in texts.items():
        rendered = root / RENDERED / "knative" / name
        rendered.parent.mkdir(parents=True, exist_ok=True)
        rendered.write_text(text, encoding="utf-8")
        steps.append(Step(["kubectl", "apply", "-f", str(rendered.relative_to(root))]))
    return steps


NAMESPACE_YAML = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"


def check_ready(options: Options, manifest: Manifest, root: Path) -> None:
    """Refuse a real run without the platform's tool, or without the bundles it deploys."""
    _check_network(options)
    tool = TOOLS[options.platform]
    if shutil.which(tool) is None:
        raise ToolMissing(f"{tool} is not on PATH: {INSTALL[tool]}, or use --dry-run")
    if options.platform in ("functions", "lambda") or (
        options.platform == "cloudrun" and not options.image_repository
    ):
        names = options.functions or tuple(f.name for f in manifest.functions)
        missing = [n for n in names if not (root / BUNDLES / n / "main.py").is_file()]
        if missing:
            raise ConfigError(
                f"no bundle in {BUNDLES}/ for {', '.join(missing)}: run `agentorch package`"
            )


def run(steps: list[Step], root: Path, echo: Callable[[str], None]) -> None:
    """Run each step in turn (from ``root``), its output kept when it captures a URL."""
    captured: dict[str, str] = {}
    for step in steps:
        argv = [Template(arg).safe_substitute(captured) for arg in step.argv]
        echo("+ " + step.shell())
        done = subprocess.run(
            argv, cwd=root, check=False, text=True,
            stdout=subprocess.PIPE if step.capture else None,
        )  # fmt: skip
        if done.returncode != 0:
            raise ConfigError(f"`{shlex.join(argv[:4])} ...` failed (exit {done.returncode})")
        if step.capture:
            captured[step.capture] = done.stdout.strip()
