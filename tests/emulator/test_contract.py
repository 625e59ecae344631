"""The environment contract (emulator/contract.py): every variable the functions' code reads is
in it, however the code names it.

A variable is read by name in four ways here, and the scan below finds each: a quoted name
(``environ.get("LOG_FILE")``); a module constant named ``*_VARIABLE`` / ``*_VARIABLES``
holding a name or a tuple of them (``shared.redact.KEY_LIST_VARIABLES``), or a pattern
(``re.compile(r"^AGENT_[A-Z0-9_]+_HEADERS$")``); and a name built from an argument
(``environ.get(f"{service}_API_KEYS")`` in ``shared.config.accepted_keys``), resolved at each
call that passes a quoted value (``accepted_keys("ORCHESTRATOR", ...)``).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator

from emulator import contract
from emulator.contract import CLI, PER_AGENT, READ_ELSEWHERE, common_variables, function_variables
from shared.config import REPO_ROOT
from shared.manifest import load_manifest

MANIFEST = load_manifest()
_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^[A-Z]{4,}$")
_CONSTANT = re.compile(r"_VARIABLES?$")
_READS = ("environ", "getenv", "env.get", "env[", "_VARIABLE")
"""A module holding none of these reads no variable by name."""
# Set by this code for its own children, or for tests only, not by a deployment; or read by
# botocore's credential chain, which the platform (or the user's machine) sets.
INTERNAL = {
    "AGENTORCH_INSTANCE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
}


def _sources() -> dict[str, str]:
    """The text of each module of ``functions`` and ``shared``, by path."""
    return {
        str(path): path.read_text(encoding="utf-8")
        for folder in ("functions", "shared")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
    }


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and _NAME.match(n.value)
    ]


def _strings_of(nodes: list[ast.expr]) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_env_read(node: ast.Call) -> bool:
    """``environ.get(...)``, ``env.get(...)``, ``os.getenv(...)``."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "getenv":
        return True
    if not (isinstance(func, ast.Attribute) and func.attr == "get"):
        return False
    target = func.value
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in {"environ", "env"}


def _key(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Call) and _is_env_read(node) and node.args:
        return node.args[0]
    if isinstance(node, ast.Subscript):
        value = node.value
        name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
        if name in {"environ", "env"}:
            return node.slice
    return None


@functools.cache
def scan() -> tuple[frozenset[str], frozenset[str]]:
    """The variable names the code reads, and the patterns (regular expressions) it reads by
    (once a session: it parses every module).

    In a fresh interpreter: on CPython 3.11.7, after some of the suite's hostile-input tests ran
    in this process, ``ast.parse`` fails with "AST constructor recursion depth mismatch" (in
    any thread), whatever the module parsed."""
    script = "import json, tests.emulator.test_contract as t; print(json.dumps(t._scan_lists()))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    names, patterns = json.loads(done.stdout)
    return frozenset(names), frozenset(patterns)


def _scan_lists() -> tuple[list[str], list[str]]:
    names, patterns = _scan()
    return sorted(names), sorted(patterns)


def _scan() -> tuple[frozenset[str], frozenset[str]]:
    texts = _sources()
    # Only a module that can read a variable is parsed (ast is the slow part of this test).
    reading = [p for p, text in texts.items() if any(c in text for c in _READS)]
    modules = {path: ast.parse(texts[path], path) for path in reading}
    names: set[str] = set()
    patterns: set[str] = set()
    built: dict[str, tuple[int, str, str]] = {}  # function -> (argument, prefix, suffix)
    for module in modules.values():
        names |= _quoted_reads(module)
        for value in _constants(module):
            if isinstance(value, ast.Call):  # re.compile(r"^AGENT_...$")
                patterns |= set(_strings_of(value.args))
            else:
                names |= set(_strings(value))
        built |= _name_builders(module)
    for path, text in texts.items():  # the calls to those functions, wherever they are
        if any(f"{name}(" in text for name in built):
            module = modules.get(path) or ast.parse(text, path)
            names |= _built_names(module, built)
    return frozenset(names), frozenset(patterns)


def _quoted_reads(module: ast.Module) -> set[str]:
    keys = (_key(node) for node in ast.walk(module))
    return {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def _constants(module: ast.Module) -> Iterator[ast.expr]:
    """The values of the module's ``*_VARIABLE(S)`` constants."""
    for node in module.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and _CONSTANT.search(t.id) for t in targets):
                yield node.value


def _name_builders(module: ast.Module) -> dict[str, tuple[int, str, str]]:
    """Functions that read a variable named from an argument: ``f"{service}_API_KEYS"``."""
    found: dict[str, tuple[int, str, str]] = {}
    for function in ast.walk(module):
        if isinstance(function, ast.FunctionDef):
            arguments = [a.arg for a in function.args.args]
            for node in ast.walk(function):
                key = _key(node)
                if isinstance(key, ast.JoinedStr) and len(key.values) <= 3:
                    found.setdefault(function.name, _template(key, arguments))
    return found


def _built_names(module: ast.Module, built: dict[str, tuple[int, str, str]]) -> set[str]:
    """The names ``built``'s functions read at each call passing a quoted value."""
    names = set()
    for node in ast.walk(module):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        index, prefix, suffix = built.get(node.func.id, (-1, "", ""))
        if 0 <= index < len(node.args):
            argument = node.args[index]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(f"{prefix}{argument.value}{suffix}")
    return names


def _template(key: ast.JoinedStr, arguments: list[str]) -> tuple[int, str, str]:
    """``f"{service}_API_KEYS"`` in ``def f(service, ...)``: (0, "", "_API_KEYS")."""
    parts = ["", "", ""]
    index, slot = -1, 0
    for value in key.values:
        if isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
            index, slot = arguments.index(value.value.id), 2
        elif isinstance(value, ast.Constant):
            parts[slot] = str(value.value)
    return index, parts[0], parts[2]


def _contract_names() -> set[str]:
    known = {v.name for v in common_variables()} | {v.name for v in READ_ELSEWHERE[CLI]}
    for function in MANIFEST.functions:
        known |= {v.name for v in function_variables(function, MANIFEST)}
    return known


def _per_agent_examples() -> set[str]:
    return {v.name.replace("<NAME>", "WEATHER") for vs in PER_AGENT.values() for v in vs}


def test_every_variable_the_code_reads_is_in_the_contract() -> None:
    names, patterns = scan()
    missing = names - _contract_names() - INTERNAL
    assert not missing, f"add these to emulator/contract.py (or a settings class): {missing}"
    for pattern in patterns:
        assert any(re.match(pattern, example) for example in _per_agent_examples()), (
            f"the code reads variables shaped {pattern}: add them to contract.PER_AGENT"
        )


def test_the_scan_finds_names_read_through_constants_and_built_names() -> None:
    names, patterns = scan()
    # shared.redact.KEY_LIST_VARIABLES, shared.config.accepted_keys("ORCHESTRATOR"),
    # client_key's f"{service}_API_KEY", shared.transport.PROXY_VARIABLES
    assert {"ORCHESTRATOR_API_KEYS", "GATEWAY_API_KEYS", "HTTPS_PROXY"} <= names
    assert {"ORCHESTRATOR_API_KEY", "GATEWAY_API_KEY", "LOG_FILE"} <= names
    assert any("HEADERS" in p for p in patterns)


def test_secrets_come_from_the_settings_and_the_providers() -> None:
    tavily = function_variables(MANIFEST.function("tavily"), MANIFEST)
    assert [v.name for v in tavily if v.secret] == ["TAVILY_API_KEY"]
    gateway = {v.name for v in contract.secrets(MANIFEST.function("gateway"), MANIFEST)}
    assert {"ANTHROPIC_API_KEY", "GATEWAY_API_KEYS"} <= gateway
    wired = {v.name: v.wired for v in contract.wired(MANIFEST.of_kind("orchestrator"), MANIFEST)}
    assert wired == {"GATEWAY_URL": "gateway", **{a.url_variable: a.name for a in MANIFEST.agents}}


def test_the_orchestrator_s_keys_and_outbound_auth_are_in_its_contract() -> None:
    orchestrator = function_variables(MANIFEST.of_kind("orchestrator"), MANIFEST)
    by_name = {v.name: v for v in orchestrator}
    assert by_name["ORCHESTRATOR_API_KEYS"].secret
    # It may carry the store's password; memory:// when unset, so only deployed when asked.
    assert by_name["STORE_URL"].secret and by_name["STORE_URL"].optional
    tavily = function_variables(MANIFEST.function("tavily"), MANIFEST)
    assert not next(v for v in tavily if v.name == "TAVILY_API_KEY").optional  # no default
    assert by_name["OUTBOUND_AUTH"].default == "none"
    assert {"GCE_METADATA_HOST", "OUTBOUND_AUTH_TIMEOUT_S", "OUTBOUND_AUTH_AWS_SERVICE"} <= set(
        by_name
    )
    table = "\n".join(contract.env_table(MANIFEST))
    assert "`AGENT_<NAME>_HEADERS`" in table and "`ORCHESTRATOR_API_KEY`" in table
