"""``agentorch package``: each function's source bundle, as the clouds' source deploys take it.

    dist/functions/<name>/   main.py, shared/, functions/<its package>, its config,
                             requirements.txt, .python-version
    dist/<name>.zip          the same files: fixed timestamps and modes, sorted, so equal bytes

The folder is what ``gcloud functions deploy NAME --gen2 --runtime=python311 --source=FOLDER
--entry-point=TARGET --trigger-http`` and ``gcloud run deploy NAME --source FOLDER --function
TARGET`` upload: the platform installs ``requirements.txt`` and runs ``functions-framework
--target TARGET`` in it, which loads ``main.py`` from the top. That ``main.py`` is written here:
it imports the function's own ``main.py`` (vendored beside it, unchanged), so a bundle runs the
code the emulator and the images run.

What goes in is an allow-list: Python sources of ``shared/`` and of the function's package (not
its tests), the ``__init__.py`` files above that package, the manifest's ``config:`` entries,
``functions.yaml`` for the orchestrator (its built-in agents), and the generated
``requirements.txt`` (exact pins from the lock, written by ``make requirements``) and a
``.python-version`` (Cloud Run's buildpacks take the newest Python without it). Nothing else
(``.env``, caches, virtual environments, tests, a config folder's files named like secrets:
``SECRET_NAMES``) can reach a bundle, whatever lies in the tree;
a symbolic link to a file outside the repository stops the build, naming it.
"""

from __future__ import annotations

import fnmatch
import io
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shared.errors import ConfigError
from shared.manifest import MANIFEST_FILE, Function, load_manifest

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the earliest a zip can hold, so a rebuild gives the same bytes."""

PYTHON_VERSION = "3.11"
"""The Python the lock is resolved for (tools/requirements.py, tests/emulator/test_package.py
checks they agree) and the images run: Cloud Functions is told it (``--runtime=python311``),
Cloud Run's buildpacks read it from ``.python-version``."""

EXTRA_ENTRY_POINTS: tuple[str, ...] = ("handler",)
"""Names the bundle's ``main.py`` exposes besides the function's target, taken from the
function's own ``main.py``: AWS Lambda's entry point (``handler``, shared/lambda_http.py), so the
one ``main.py`` serves functions-framework and Lambda (``--handler main.handler``)."""

KIND_FILES: dict[str, tuple[str, ...]] = {"orchestrator": (MANIFEST_FILE,)}
"""Files a kind of function reads at run time besides its config: the orchestrator lists its
built-in agents from the manifest (each found by ``<NAME>_URL`` on a platform)."""

_SKIPPED_PARTS = {"__pycache__", "tests", "test"}
SECRET_NAMES = (
    "*.env",
    "*.env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "id_rsa*",
    "id_ed25519*",
    "*credentials*",
    "*secret*",
    "*.tfvars",
    "*.tfstate",
    "service-account*.json",
)
"""Files in a config folder that are never bundled, whatever the folder holds: named like a
secret (``prod.env``, ``credentials.json``, a private key). Matched case-insensitively."""

ENTRY = '''\
"""The {name} function's source bundle entry point (written by `agentorch package`).

functions-framework --target {target} loads this file (Cloud Functions: --entry-point={target};
Cloud Run: --function {target}). The function is {module}, vendored beside it.
"""

from {module} import {names}

__all__ = [{quoted}]
'''


@dataclass(frozen=True)
class Bundle:
    """One function's bundle, as written."""

    name: str
    folder: Path
    archive: Path
    files: int
    size: int
    """The folder's files, in bytes."""
    archive_size: int


def entry_point(function: Function) -> str:
    """The text of the bundle's top ``main.py``: the function's entry points, re-exported."""
    names = (function.target, *EXTRA_ENTRY_POINTS)
    module = function.source.replace("/", ".") + ".main"
    quoted = ", ".join(f'"{name}"' for name in names)
    return ENTRY.format(
        name=function.name,
        target=function.target,
        module=module,
        names=", ".join(names),
        quoted=quoted,
    )


def _is_source(relative: PurePosixPath) -> bool:
    name = relative.name
    if relative.suffix != ".py" or name == "conftest.py" or name.startswith("test_"):
        return False
    return not any(part in _SKIPPED_PARTS or part.startswith(".") for part in relative.parts)


def _python_sources(root: Path, folder: str) -> Iterable[str]:
    base = root / folder
    for path in base.rglob("*.py"):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if path.is_file() and _is_source(PurePosixPath(path.relative_to(base).as_posix())):
            yield str(relative)


def _config_files(root: Path, entry: str) -> Iterable[str]:
    if not entry.endswith("/"):
        yield entry
        return
    for path in (root / entry).rglob("*"):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        hidden = any(p.startswith(".") or p == "__pycache__" for p in relative.parts)
        if path.is_file() and not hidden and not _named_like_a_secret(relative.name):
            yield str(relative)


def _named_like_a_secret(name: str) -> bool:
    return any(fnmatch.fnmatch(name.lower(), pattern) for pattern in SECRET_NAMES)


def _package_inits(root: Path, source: str) -> Iterable[str]:
    """The ``__init__.py`` of each folder above the function's (``functions/agents/...``)."""
    parts = source.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        init = "/".join(parts[:depth]) + "/__init__.py"
        if (root / init).is_file():
            yield init


def requirements(root: Path, function: Function) -> str:
    """Its pinned ``requirements.txt``: the one ``make requirements`` writes from the lock beside
    the function (tests/test_dependencies.py keeps it current); the core alone without an extra."""
    if function.extra is None:
        try:
            from tools.requirements import requirements_for
        except ImportError as exc:  # tools/ is the repository's, not the installed package's
            raise ConfigError(
                f"{function.name} has no extra: run `python -m emulator.cli package` from the "
                "repository root to resolve its core requirements"
            ) from exc
        return requirements_for(None)
    path = root / function.source / "requirements.txt"
    if not path.is_file():
        raise ConfigError(f"{path.relative_to(root)} is missing: run `make requirements`")
    return path.read_text(encoding="utf-8")


def contents(root: Path, function: Function) -> dict[str, bytes]:
    """Every file of the bundle, by its path inside it, in sorted order."""
    names = [*_python_sources(root, "shared"), *_package_inits(root, function.source)]
    names += _python_sources(root, function.source)
    for entry in function.config:
        names += _config_files(root, entry)
    names += KIND_FILES.get(function.kind, ())
    files = {}
    for name in names:
        path = root / name
        if not path.is_file():
            raise ConfigError(f"{function.name}: {name} is missing (functions.yaml names it)")
        _inside(root, name, function.name)
        files[name] = path.read_bytes()
    files["main.py"] = entry_point(function).encode()
    files["requirements.txt"] = requirements(root, function).encode()
    files[".python-version"] = f"{PYTHON_VERSION}\n".encode()
    return dict(sorted(files.items()))


def _inside(root: Path, name: str, function: str) -> None:
    """Refuse a file that is (or lies under) a symbolic link to somewhere outside ``root``:
    a bundle is uploaded, and a link could carry in ``~/.aws/credentials`` under any name."""
    real_root = root.resolve()
    if not (root / name).resolve().is_relative_to(real_root):
        raise ConfigError(
            f"{function}: {name} is a symbolic link to a file outside the repository: "
            "a bundle takes only the repository's own files"
        )


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip of ``files`` that depends on nothing else: sorted names, fixed time and mode."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode below is read as one
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def build(root: Path, function: Function, out: Path) -> Bundle:
    """Write ``out/functions/<name>/`` (replacing it) and ``out/<name>.zip``."""
    files = contents(root, function)
    folder = out / "functions" / function.name
    if folder.exists():
        shutil.rmtree(folder)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    archive = out / f"{function.name}.zip"
    archive.write_bytes(zip_bytes(files))
    size = sum(len(data) for data in files.values())
    return Bundle(function.name, folder, archive, len(files), size, archive.stat().st_size)


def package(root: Path, names: Sequence[str] = (), out: Path | None = None) -> list[Bundle]:
    """Bundle the named functions (none: all of them) from the repository at ``root``."""
    manifest = load_manifest(root / MANIFEST_FILE)
    known = [f.name for f in manifest.functions]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"no function {', '.join(map(repr, unknown))} in {MANIFEST_FILE} "
            f"(functions: {', '.join(known)})"
        )
    chosen = [manifest.function(name) for name in names] if names else manifest.functions
    target = out if out is not None else root / "dist"
    return [build(root, function, target) for function in chosen]
