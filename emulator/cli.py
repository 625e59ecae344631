"""``agentorch``: run the stack on the emulator and talk to it.

    agentorch up [-d] [--reload]     start every function of docker-compose.yml as a process
    agentorch status | down          what runs where; stop it all
    agentorch logs [SERVICE] [-f]    the services' output
    agentorch restart SERVICE
    agentorch invoke SERVICE --data JSON [--cloudevent TYPE [--structured]]
    agentorch ask ["TASK"] [--data FILE] [--json] [--session NAME]
                                     (no task: an interactive prompt, which keeps a session)
    agentorch health [--api-key KEY] every service's /health and the gateway's providers
    agentorch new agent NAME         scaffold an agent: its folder, test and functions.yaml entry
    agentorch manifest               rewrite the files generated from functions.yaml
    agentorch package [FUNCTION...] [--out DIR]   source bundles for Cloud Functions / Cloud Run
    agentorch deploy PLATFORM [FUNCTION...] [--dry-run]   cloudrun, functions, lambda, knative

A key for the gateway (health, invoke) is --api-key, else GATEWAY_API_KEY, else the first of
GATEWAY_API_KEYS (the environment, then .env): the orchestrator takes its key the same way.
A key for the orchestrator (ask, invoke), when it requires one, is found the same way:
--api-key, else ORCHESTRATOR_API_KEY, else the first of ORCHESTRATOR_API_KEYS.

Errors are one line saying what failed and what to run, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from emulator import client, events, render, stack
from emulator.compose import REPO_ROOT, Project, load_project
from emulator.errors import KeyRefused
from emulator.logs import Prefixer, show
from emulator.network import LOOPBACK, Address, assign_addresses
from emulator.state import StateFolder, state_dir
from shared.config import client_key
from shared.errors import AgentOrchestratorError, ConfigError, UpstreamError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="agentorch", description=__doc__.split("\n\n")[0])
    top.add_argument("--file", help="the compose file (default: docker-compose.yml at the root)")
    top.add_argument("--state-dir", help="where state and logs live (default: .agentorch/)")
    top.add_argument("--profile", action="append", default=None, help="a Compose profile to enable")
    commands = top.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the stack (Ctrl-C stops it)")
    up.add_argument("-d", "--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--reload", action="store_true", help="restart a function when its source changes"
    )
    up.add_argument(
        "--port", action="append", default=[], metavar="SERVICE=PORT", help="another port"
    )
    up.add_argument(
        "--any-port", action="store_true", help="free ports instead of the compose ones"
    )
    up.add_argument(
        "--timeout", type=float, default=None, help="seconds each service has to be healthy"
    )
    up.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)

    commands.add_parser("down", help="stop the stack; no process is left behind")
    commands.add_parser("status", help="each service: URL, PID, health")
    logs = commands.add_parser("logs", help="the services' output")
    logs.add_argument("service", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=None, metavar="N")
    restart = commands.add_parser("restart", help="restart one service")
    restart.add_argument("service")
    restart.add_argument("--timeout", type=float, default=60.0)

    invoke = commands.add_parser("invoke", help="POST JSON (or a CloudEvent) to a service")
    invoke.add_argument("service")
    invoke.add_argument("--data", default="{}", help="the JSON body")
    invoke.add_argument("--path", default="/", help="the path to POST to (default /)")
    invoke.add_argument(
        "--cloudevent", metavar="TYPE", help="send the data as a CloudEvent of TYPE"
    )
    invoke.add_argument("--structured", action="store_true", help="structured mode, not binary")
    add_api_key(invoke)

    ask = commands.add_parser("ask", help="send a task to the orchestrator")
    ask.add_argument("task", nargs="*", help="the task; none: an interactive prompt")
    ask.add_argument("--url", help="the orchestrator (default: ORCHESTRATOR_URL, then the stack's)")
    ask.add_argument("--data", type=Path, metavar="FILE", help="attach a CSV or JSON file")
    ask.add_argument("--json", action="store_true", help="print the raw response")
    ask.add_argument("--timeout", type=float, default=300.0)
    ask.add_argument(
        "--session",
        metavar="NAME",
        help="keep a conversation: each task sees the earlier ones of NAME (the interactive "
        "prompt keeps one of its own unless this names it)",
    )
    ask.add_argument(
        "--api-key",
        help="the orchestrator's key (default: ORCHESTRATOR_API_KEY, else the first of "
        "ORCHESTRATOR_API_KEYS)",
    )

    health = commands.add_parser(
        "health", help="every service's /health and the gateway's providers"
    )
    add_api_key(health)

    new = commands.add_parser("new", help="scaffold a new function: `agentorch new agent NAME`")
    new.add_argument("kind", choices=["agent"])
    new.add_argument("name", help="its name, as the model sees its tool (weather, geo_v2)")
    commands.add_parser("manifest", help="rewrite the files generated from functions.yaml")
    traces = commands.add_parser(
        "traces", help="a trace viewer with no collector: print the spans sent to it over OTLP"
    )
    traces.add_argument("--port", type=int, default=4318, help="where it listens (4318)")
    package = commands.add_parser(
        "package", help="each function's source bundle: dist/functions/NAME/ and dist/NAME.zip"
    )
    package.add_argument("function", nargs="*", help="the functions to bundle (default: all)")
    package.add_argument("--out", type=Path, help="where to write them (default: dist/)")
    add_deploy(commands)
    return top


def add_deploy(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = commands.add_parser(
        "deploy", help="deploy to a cloud FaaS (DEPLOY.md): print or run the commands"
    )
    deploy.add_argument("platform", choices=["cloudrun", "functions", "lambda", "knative"])
    deploy.add_argument("function", nargs="*", help="the functions to deploy (default: all)")
    deploy.add_argument("--project", help="the Google Cloud project (default: gcloud's)")
    deploy.add_argument("--region", help="the region (default: the CLI's)")
    deploy.add_argument(
        "--image-repository",
        default=os.environ.get("IMAGE_REPOSITORY"),
        help="where the images are (default: IMAGE_REPOSITORY); cloudrun: deploy images",
    )
    deploy.add_argument("--tag", default=os.environ.get("TAG", "latest"), help="the images' tag")
    deploy.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="VARIABLE",
        help="also set this optional secret (ANTHROPIC_AUTH_TOKEN) from the secret store",
    )
    deploy.add_argument(
        "--internal",
        action="store_true",
        help="cloudrun: gateway and agents take internal traffic only (needs --network)",
    )
    deploy.add_argument("--network", help="with --internal: the orchestrator's VPC network")
    deploy.add_argument("--subnet", help="with --internal: its subnet (default: the network's)")
    deploy.add_argument("--dry-run", action="store_true", help="print the commands, run none")


def add_api_key(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--api-key",
        help="the gateway's key (default: GATEWAY_API_KEY, else the first of GATEWAY_API_KEYS;"
        " the orchestrator's: ORCHESTRATOR_API_KEY, else the first of ORCHESTRATOR_API_KEYS)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        return run(args, console)
    except AgentOrchestratorError as exc:
        print(f"agentorch: {exc.message}", file=sys.stderr)  # unwrapped: one line
        return int(getattr(exc, "exit_code", 1))  # deploy's refusals: 2
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace, console: Console) -> int:
    folder = StateFolder(state_dir(args.state_dir))
    handler = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "logs": cmd_logs,
        "restart": cmd_restart,
        "invoke": cmd_invoke,
        "ask": cmd_ask,
        "health": cmd_health,
        "new": cmd_new,
        "manifest": cmd_manifest,
        "package": cmd_package,
        "deploy": cmd_deploy,
        "traces": cmd_traces,
    }[args.command]
    return handler(args, folder, console)


def project_of(args: argparse.Namespace) -> Project:
    return load_project(args.file, profiles=args.profile)


def parse_ports(values: Sequence[str]) -> dict[str, int]:
    ports = {}
    for value in values:
        name, _, port = value.partition("=")
        if not port.isdigit():
            raise ConfigError(f"--port {value}: expected SERVICE=PORT, such as model-gateway=9585")
        ports[name] = int(port)
    return ports


def cmd_up(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    project = project_of(args)
    addresses = assign_addresses(
        project.services.values(), parse_ports(args.port), any_port=args.any_port
    )
    if args.detach:
        child = _global_args(args, folder) + ["up", "--quiet"] + _up_args(args, addresses)
        state = stack.up_detached(child, addresses, folder, stack.DETACH_TIMEOUT_S)
        for name, service in state.services.items():
            console.print(f"{name:<22} {service.url}  pid {service.pid}", markup=False)
        console.print(
            f"all {len(state.services)} services healthy in {state.started_s:.2f} s "
            "(`agentorch down` stops them)",
            markup=False,
        )
        return 0
    options = stack.UpOptions(reload=args.reload, start_timeout_s=args.timeout, quiet=args.quiet)
    stack.up(project, addresses, folder, options, lambda line: console.print(line, markup=False))
    return 0


def _global_args(args: argparse.Namespace, folder: StateFolder) -> list[str]:
    result = ["--state-dir", str(folder.root)]
    if args.file:
        result += ["--file", str(Path(args.file).resolve())]
    for profile in args.profile or []:
        result += ["--profile", profile]
    return result


def _up_args(args: argparse.Namespace, addresses: dict[str, Address]) -> list[str]:
    # The ports are fixed here, so that free ones picked by --any-port are the ones reported.
    result = [f"--port={name}={address.port}" for name, address in addresses.items()]
    if args.reload:
        result.append("--reload")
    if args.timeout is not None:
        result += ["--timeout", str(args.timeout)]
    return result


def cmd_down(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    stopped = stack.down(folder)
    console.print(
        f"stopped: {', '.join(stopped)}" if stopped else "nothing was running", markup=False
    )
    return 0


def cmd_status(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    state = stack.live_state(folder)
    if state is None:
        console.print(f"not running (state folder {folder.root}); start it with `agentorch up -d`")
        return 1
    orphans = stack.orphans(state)
    if orphans:
        console.print(
            f"the supervisor (pid {state.supervisor_pid}) is gone, but {len(orphans)} services "
            "still run unsupervised: `agentorch down` stops them",
            markup=False,
            style="red",
        )
    else:
        console.print(
            f"supervisor pid {state.supervisor_pid}, {state.status}, from {state.compose_file}",
            markup=False,
        )
    console.print(render.status_table(stack.status_rows(state)))
    return 1 if orphans else 0


def cmd_logs(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    state = folder.read()
    names = list(state.services) if state else list(project_of(args).services)
    if args.service:
        if args.service not in names:
            raise ConfigError(f"no service {args.service!r} (services: {', '.join(names)})")
        names = [args.service]
    prefixer = Prefixer(names, sys.stdout, color=sys.stdout.isatty())
    show({n: folder.log_file(n) for n in names}, prefixer, follow=args.follow, tail=args.tail)
    return 0


def cmd_restart(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    state = stack.restart(folder, args.service, args.timeout)
    service = state.services[args.service]
    console.print(f"{args.service} restarted: pid {service.pid}, {service.url}", markup=False)
    return 0


def service_urls(args: argparse.Namespace, folder: StateFolder) -> dict[str, str]:
    """The running stack's URLs; without one, the compose file's host ports."""
    state = stack.live_state(folder)
    if state is not None:
        return {name: service.url for name, service in state.services.items()}
    return {n: Address(LOOPBACK, s.port).url for n, s in project_of(args).services.items()}


def instances(folder: StateFolder) -> dict[str, str]:
    """The running stack's instance tokens, which its services' ``/health`` echo."""
    state = stack.live_state(folder)
    services = state.services.items() if state is not None else ()
    return {name: service.instance for name, service in services if service.instance}


def gateway_key(args: argparse.Namespace) -> str | None:
    """--api-key, else the key the orchestrator would take: from the environment, then from
    what the compose file (with .env) gives the gateway."""
    return _key_for(args, "GATEWAY", "gateway")


def orchestrator_key(args: argparse.Namespace) -> str | None:
    """--api-key, else ``ORCHESTRATOR_API_KEY`` or the first of ``ORCHESTRATOR_API_KEYS``: from
    the environment, then from what the compose file (with .env) gives the orchestrator."""
    return _key_for(args, "ORCHESTRATOR", "orchestrator")


def _key_for(args: argparse.Namespace, service: str, target: str) -> str | None:
    if args.api_key:
        return str(args.api_key)
    key = client_key(service, os.environ)
    if key:
        return key
    try:
        return client_key(service, project_of(args).by_target(target).environment)
    except ConfigError:
        return None


def cmd_invoke(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    urls = service_urls(args, folder)
    if args.service not in urls:
        raise ConfigError(f"no service {args.service!r} (services: {', '.join(urls)})")
    invocation = events.build(
        events.parse_json(args.data), args.cloudevent, structured=args.structured
    )
    key = None  # each key goes to its own service only
    if args.service == _service_name(args, "gateway"):
        key = gateway_key(args)
    elif args.service == _service_name(args, "orchestrator"):
        key = orchestrator_key(args)
    if key:
        invocation.headers["x-api-key"] = key
    reply = events.invoke(urls[args.service] + args.path, invocation)
    try:
        print(json.dumps(reply.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(reply.text)
    return 0 if reply.is_success else 1


def orchestrator_url(args: argparse.Namespace, folder: StateFolder) -> str:
    if args.url or os.environ.get("ORCHESTRATOR_URL"):
        return str(args.url or os.environ["ORCHESTRATOR_URL"])
    project = project_of(args)
    name = project.by_target("orchestrator").name
    return service_urls(args, folder).get(name, f"http://{LOOPBACK}:8080")


def cmd_ask(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    url = orchestrator_url(args, folder)
    data = client.read_data(args.data) if args.data else None
    key = orchestrator_key(args)
    if args.task:
        return ask_once(" ".join(args.task), url, data, args, console, key)
    from emulator.prompt import tasks  # prompt_toolkit is only needed here

    # One conversation per prompt, so that "now add 8 to that" follows what came before.
    args.session = args.session or f"ask-{secrets.token_hex(6)}"
    console.print(f"session {args.session} (agentorch ask --session {args.session} continues it)")
    for task in tasks(folder.root / "history", console):
        try:
            ask_once(task, url, data, args, console, key)
        except AgentOrchestratorError as exc:
            console.print(f"agentorch: {exc.message}", markup=False, style="red")
    return 0


def ask_once(
    task: str,
    url: str,
    data: object,
    args: argparse.Namespace,
    console: Console,
    key: str | None = None,
    confirm: Callable[[str], bool] | None = None,
) -> int:
    if confirm is None and sys.stdin.isatty():
        confirm = _ask_terminal
    session = args.session
    if args.json:
        result = client.ask(
            url, task, data, stream=False, timeout_s=args.timeout, api_key=key, session_id=session
        )
        print(json.dumps(result, indent=2, ensure_ascii=False))  # unwrapped: JSON for tools
    else:
        with render.StepProgress(console) as progress:
            result = client.ask(
                url,
                task,
                data,
                on_event=progress,
                timeout_s=args.timeout,
                api_key=key,
                session_id=session,
            )
        render.print_result(console, result)
        result = _approvals(result, url, console, key, confirm)
    return 0 if result.get("status") == "completed" else 2


def _approvals(
    result: dict[str, Any],
    url: str,
    console: Console,
    key: str | None,
    confirm: Callable[[str], bool] | None,
) -> dict[str, Any]:
    """While the run waits for approval: show the calls it proposes, ask y/n, send the
    answer; without a terminal (``confirm`` None), say how to answer instead."""
    while result.get("status") == "waiting_approval":
        run_id = str(result.get("run_id"))
        for call in result.get("pending_approval") or []:
            shown = json.dumps(call.get("arguments"), ensure_ascii=False)
            console.print(f"approval needed: {call.get('tool')} {shown}", markup=False)
        if confirm is None:
            console.print(f"answer with POST {url}/runs/{run_id}/approval", markup=False)
            return result
        approved = confirm("approve? [y/N] ")
        result = client.approve(url, run_id, approved, api_key=key)
        render.print_result(console, result)
    return result


def _ask_terminal(question: str) -> bool:
    return input(question).strip().lower() in ("y", "yes")


def _service_name(args: argparse.Namespace, target: str) -> str | None:
    try:
        return project_of(args).by_target(target).name
    except ConfigError:
        return None


def cmd_health(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    urls = service_urls(args, folder)
    rows = client.check_health(urls, instances=instances(folder))
    gateway = _service_name(args, "gateway")
    deployments, refusal = None, None
    for row in rows:
        if row.service == gateway and row.healthy:
            # /health is open to all; /providers takes a key when the gateway has keys, so it
            # is what proves the key this stack's clients use is accepted.
            try:
                deployments = client.providers(row.url, gateway_key(args))
            except UpstreamError as exc:
                refused = isinstance(exc, KeyRefused)
                row.detail = "401: the key was refused" if refused else "/providers failed"
                row.healthy, refusal = False, exc.message
    console.print(render.health_table(rows))
    if deployments is not None:
        console.print(render.providers_table(deployments))
    if refusal:
        console.print(refusal, markup=False, style="red")
    if not all(row.healthy for row in rows):
        console.print(
            "unhealthy: " + ", ".join(r.service for r in rows if not r.healthy),
            markup=False,
            style="red",
        )
        return 1
    return 0


def cmd_new(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    from emulator import scaffold  # pydantic, which the other commands start without

    root = REPO_ROOT
    written = scaffold.new_agent(root, args.name)
    for path in written:
        console.print(f"wrote {path.relative_to(root)}", markup=False)
    console.print(
        f"agent {args.name!r} is ready: edit functions/agents/{args.name}/agent.py, then "
        f"`.venv/bin/python -m pytest tests/agents/{args.name}` and `make up`",
        markup=False,
    )
    return 0


def cmd_manifest(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    from emulator import generate  # pydantic, which the other commands start without

    changed = generate.generate(REPO_ROOT)
    for path in changed:
        console.print(f"wrote {path.relative_to(REPO_ROOT)}", markup=False)
    if not changed:
        console.print("every generated file is current", markup=False)
    return 0


def cmd_package(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    from emulator import package  # pydantic, which the other commands start without

    bundles = package.package(REPO_ROOT, args.function, args.out)
    for bundle in bundles:
        console.print(
            f"{bundle.name:<16} {bundle.files:>3} files {bundle.size / 1024:>7.1f} KiB, "
            f"zip {bundle.archive_size / 1024:>6.1f} KiB",
            markup=False,
        )
    where = bundles[0].archive.parent if bundles else args.out
    console.print(f"wrote {where}/functions/NAME/ and {where}/NAME.zip", markup=False)
    return 0


def cmd_traces(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    from emulator.traces import receiver

    try:
        server = receiver(args.port, lambda span: print(span.line(), flush=True))
    except OSError as exc:
        raise ConfigError(f"--port {args.port}: cannot listen there ({exc.strerror})") from exc
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    console.print(f"OTLP/HTTP receiver on {endpoint}: start the stack with", markup=False)
    console.print(f"  OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} agentorch up", markup=False)
    with server:
        server.serve_forever()
    return 0


def cmd_deploy(args: argparse.Namespace, folder: StateFolder, console: Console) -> int:
    from emulator import deploy  # pydantic, which the other commands start without
    from shared.manifest import load_manifest

    options = deploy.Options(
        platform=args.platform,
        functions=tuple(args.function),
        project=args.project,
        region=args.region,
        image_repository=args.image_repository,
        tag=args.tag,
        secrets=tuple(args.secret),
        internal=args.internal,
        network=args.network,
        subnet=args.subnet,
    )
    manifest = load_manifest()
    if not args.dry_run:
        deploy.check_ready(options, manifest, REPO_ROOT)
    steps = deploy.plan(manifest, options, REPO_ROOT)
    if args.dry_run:
        for step in steps:
            print(step.shell())  # unwrapped: lines to paste into a shell
        return 0
    deploy.run(steps, REPO_ROOT, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
