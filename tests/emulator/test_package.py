"""``agentorch package``: what each source bundle holds, and nothing else (emulator/package.py).

In process and offline: the bundles are built from this repository or from a copy of it in a
temporary folder. That each bundle installs and answers alone is tests/deploy/ (make test-deploy).
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from emulator import cli, package
from shared.errors import ConfigError
from shared.manifest import Function, load_manifest
from tests.test_dependencies import LOCKED, read_pins
from tools.requirements import PYTHON_VERSION

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = load_manifest(ROOT / "functions.yaml").functions
SECRET = "sk-ant-api03-never-in-a-bundle"


def allowed(function: Function, name: str) -> bool:
    """The allow-list, written from the manifest the way a reviewer reads it."""
    path = PurePosixPath(name)
    if name in ("main.py", "requirements.txt", ".python-version"):
        return True
    if name == "functions.yaml":
        return function.kind == "orchestrator"
    if any(name == c or (c.endswith("/") and name.startswith(c)) for c in function.config):
        return True
    source = PurePosixPath(function.source)
    if path.suffix != ".py":
        return False
    if path.parts[0] == "shared" or path.is_relative_to(source):
        return True
    return path.name == "__init__.py" and source.is_relative_to(path.parent)


def repo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in ("shared", "functions", "config"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "functions.yaml", root / "functions.yaml")
    return root


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_a_bundle_holds_only_the_allow_list(function: Function) -> None:
    files = package.contents(ROOT, function)
    assert {"main.py", "requirements.txt", "shared/__init__.py"} <= set(files)
    assert f"{function.source}/main.py" in files
    assert [name for name in files if not allowed(function, name)] == []
    assert list(files) == sorted(files)
    for entry in function.config:
        assert any(name.startswith(entry) for name in files), entry


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_the_top_main_exposes_the_target_from_the_vendored_function(function: Function) -> None:
    files = package.contents(ROOT, function)
    tree = ast.parse(files["main.py"])
    [imported] = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert imported.module is not None
    assert imported.module.replace(".", "/") + ".py" in files
    assert function.target in [alias.name for alias in imported.names]


def test_no_secret_cache_test_or_venv_reaches_a_bundle(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    calculator = root / "functions" / "agents" / "calculator"
    planted = {
        root / ".env": f"ANTHROPIC_API_KEY={SECRET}\n",
        root / "shared" / ".env": f"ANTHROPIC_API_KEY={SECRET}\n",
        calculator / ".env": f"ANTHROPIC_API_KEY={SECRET}\n",
        calculator / "credentials.json": f'{{"key": "{SECRET}"}}\n',
        calculator / "tests" / "test_agent.py": f"KEY = {SECRET!r}\n",
        calculator / "test_inline.py": f"KEY = {SECRET!r}\n",
        calculator / "conftest.py": f"KEY = {SECRET!r}\n",
        calculator / "__pycache__" / "agent.cpython-311.py": f"KEY = {SECRET!r}\n",
        calculator / ".venv" / "lib" / "site.py": f"KEY = {SECRET!r}\n",
        root / "config" / "knowledge" / ".env": f"KEY={SECRET}\n",
        root / "config" / "knowledge" / "__pycache__" / "x.md": f"{SECRET}\n",
        root / "config" / "knowledge" / "prod.env": f"KEY={SECRET}\n",
        root / "config" / "knowledge" / "app.env.local": f"KEY={SECRET}\n",
        root / "config" / "knowledge" / "credentials.json": f'{{"key": "{SECRET}"}}\n',
        root / "config" / "knowledge" / "AWS_Credentials": f"{SECRET}\n",
        root / "config" / "knowledge" / "deploy.pem": f"{SECRET}\n",
        root / "config" / "knowledge" / "id_rsa": f"{SECRET}\n",
        root / "config" / "knowledge" / "client_secret.json": f"{SECRET}\n",
    }
    for path, text in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    bundles = package.package(root, out=tmp_path / "dist")

    assert [b.name for b in bundles] == [f.name for f in FUNCTIONS]
    for bundle in bundles:
        on_disk = [p for p in bundle.folder.rglob("*") if p.is_file()]
        assert on_disk, bundle.name
        for path in on_disk:
            assert SECRET.encode() not in path.read_bytes(), path
        with zipfile.ZipFile(bundle.archive) as archive:
            assert sorted(archive.namelist()) == sorted(
                p.relative_to(bundle.folder).as_posix() for p in on_disk
            )
            for name in archive.namelist():
                assert SECRET.encode() not in archive.read(name), f"{bundle.name}: {name}"


@pytest.mark.parametrize(
    "link",
    ["functions/agents/calculator/helpers.py", "shared/extra.py", "config/knowledge/notes.md"],
)
def test_a_link_to_a_file_outside_the_repository_is_refused(tmp_path: Path, link: str) -> None:
    root = repo_copy(tmp_path)
    outside = tmp_path / "credentials"
    outside.write_text(f"aws_secret_access_key = {SECRET}\n", encoding="utf-8")
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(outside)

    with pytest.raises(ConfigError, match="outside the repository") as refused:
        package.package(root, out=tmp_path / "dist")
    assert link in str(refused.value)
    assert not any(
        SECRET.encode() in p.read_bytes() for p in (tmp_path / "dist").rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_requirements_are_exact_pins_from_the_lock(function: Function, tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(package.requirements(ROOT, function), encoding="utf-8")
    pins = read_pins(path)  # fails on any line that is not an exact pin
    assert "functions-framework" in pins
    for name, pin in pins.items():
        assert name in LOCKED, f"{function.name}: {name} is not in constraints.txt"
        assert pin.version == LOCKED[name].version, f"{function.name}: {name}"


def test_the_bundle_names_the_python_the_lock_is_resolved_for() -> None:
    assert package.PYTHON_VERSION == PYTHON_VERSION
    files = package.contents(ROOT, FUNCTIONS[0])
    assert files[".python-version"] == f"{PYTHON_VERSION}\n".encode()


def test_the_same_sources_give_the_same_zip_bytes(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    first = package.package(root, ["search"], tmp_path / "one")[0].archive.read_bytes()
    for path in (root / "shared").rglob("*.py"):  # newer times, another mode: same bytes
        os.utime(path, (2_000_000_000, 2_000_000_000))
        path.chmod(0o600)
    again = package.package(root, ["search"], tmp_path / "two")[0].archive.read_bytes()
    assert first == again
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {package.ZIP_DATE}
    assert {i.external_attr >> 16 for i in infos} == {0o644}


def test_a_rebuild_replaces_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    [bundle] = package.package(ROOT, ["calculator"], out)
    (bundle.folder / "stale.py").write_text("left from before\n", encoding="utf-8")
    package.package(ROOT, ["calculator"], out)
    assert not (bundle.folder / "stale.py").exists()


def test_an_unknown_function_is_refused_naming_it_and_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        package.package(ROOT, ["calculator", "nope"], tmp_path / "dist")
    assert "'nope'" in caught.value.message and "calculator, search" in caught.value.message
    assert not (tmp_path / "dist").exists()  # nothing written before the refusal


def test_the_command_prints_each_bundle_and_its_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["package", "calculator", "tavily", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "calculator" in out and "tavily" in out and "KiB" in out
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == ["calculator.zip", "tavily.zip"]
    assert cli.main(["package", "nope", "--out", str(tmp_path)]) == 1
    assert "no function 'nope'" in capsys.readouterr().err
