"""A fake ``docker`` (and ``docker-compose``) command for testing the docker/ scripts without
an engine: images live in a JSON file (``$FAKE_DOCKER_STATE``), every call is recorded there.

It models what the scripts depend on, as Docker 20.10 behaves: an image may carry several tags
and a parent; ``docker images`` lists one row per tag, plus untagged images nothing is built on
(dangling), never the intermediate ones; ``rmi`` of a tag untags, and deletes the image (and
its untagged parents) once no tag and no child is left; ``rmi`` of an id fails while children
exist ("image has dependent child images") or, without ``-f``, while it has several tags.

    python -m tests.fakes.docker_cli ARGS...            (as docker)
    FAKE_DOCKER_AS=compose python -m tests.fakes.docker_cli ARGS...   (as docker-compose)
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Image:
    id: str
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Engine:
    images: list[Image] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Engine:
        data = json.loads(path.read_text()) if path.exists() else {}
        images = [Image(**image) for image in data.get("images", [])]
        return cls(images, data.get("calls", []))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    def find(self, reference: str) -> Image | None:
        tag = reference if ":" in reference else f"{reference}:latest"
        return next((i for i in self.images if tag in i.tags or i.id == reference), None)

    def children(self, image: Image) -> list[Image]:
        return [i for i in self.images if i.parent == image.id]

    def listed(self) -> list[tuple[Image, str]]:
        """``docker images`` rows: one per tag, and ``<none>:<none>`` for dangling images."""
        rows = [(image, tag) for image in self.images for tag in image.tags]
        rows += [(i, "<none>:<none>") for i in self.images if not i.tags and not self.children(i)]
        return rows

    def delete(self, image: Image) -> None:
        """Remove ``image``, then its parents that are left untagged and childless."""
        self.images.remove(image)
        parent = next((i for i in self.images if i.id == image.parent), None)
        if parent is not None and not parent.tags and not self.children(parent):
            self.delete(parent)


def images(engine: Engine, args: list[str]) -> int:
    quiet = "-q" in args
    rows = engine.listed()
    for index, arg in enumerate(args):
        if arg == "--filter":
            key, _, value = args[index + 1].partition("=")
            if key == "label":
                name, _, wanted = value.partition("=")
                rows = [(i, t) for i, t in rows if i.labels.get(name) == wanted]
            elif key == "dangling":
                rows = [(i, t) for i, t in rows if t == "<none>:<none>"]
            elif key == "reference":
                rows = [(i, t) for i, t in rows if fnmatch.fnmatch(t.rsplit(":", 1)[0], value)]
    positional = [a for i, a in enumerate(args) if not a.startswith("-") and not _value(args, i)]
    if positional:
        rows = [(i, t) for i, t in rows if fnmatch.fnmatch(t.rsplit(":", 1)[0], positional[0])]
    for image, tag in rows:
        print(image.id if quiet else tag)
    return 0


def _value(args: list[str], index: int) -> bool:
    """Whether ``args[index]`` is the value of the option before it."""
    return index > 0 and args[index - 1] in ("--filter", "--format", "-f")


def rmi(engine: Engine, args: list[str]) -> int:
    force = "-f" in args or "--force" in args
    failed = 0
    for reference in [a for a in args if not a.startswith("-")]:
        image = engine.find(reference)
        if image is None:
            print(f"Error: No such image: {reference}", file=sys.stderr)
            failed = 1
        elif reference != image.id:  # a tag: untag, delete when nothing holds it any more
            image.tags.remove(reference if ":" in reference else f"{reference}:latest")
            if not image.tags and not engine.children(image):
                engine.delete(image)
        elif engine.children(image):
            print(
                f"Error response from daemon: conflict: unable to delete {image.id} "
                "(cannot be forced) - image has dependent child images",
                file=sys.stderr,
            )
            failed = 1
        elif len(image.tags) > 1 and not force:
            print(f"Error: conflict: unable to delete {image.id} (must be forced)", file=sys.stderr)
            failed = 1
        else:
            engine.delete(image)
    return failed


def build(engine: Engine, args: list[str]) -> int:
    tag = args[args.index("-t") + 1]
    base = next(a.split("=", 1)[1] for a in args if a.startswith("BASE_IMAGE="))
    parent = engine.find(base)
    if parent is None:
        print(f"pull access denied for {base}", file=sys.stderr)
        return 1
    old = engine.find(tag)
    if old is not None:
        old.tags.remove(tag)
    label = {"io.agentorch.project": "agent-orchestrator"}
    engine.images.append(Image(f"sha{len(engine.calls):04d}", [tag], parent.id, label))
    return 0


def docker(engine: Engine, args: list[str]) -> int:
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "info":
        return 0
    if command == "image" and rest[:1] == ["inspect"]:
        image = engine.find(rest[-1])
        if image is not None and "--format" in rest:
            print(1_000_000)
        return 0 if image is not None else 1
    handlers = {"images": images, "rmi": rmi, "build": build}
    if command in handlers:
        return handlers[command](engine, rest)
    return 1  # compose (v2), buildx, pull: not installed, not reachable


def main() -> int:
    state = Path(os.environ["FAKE_DOCKER_STATE"])
    engine = Engine.load(state)
    as_compose = os.environ.get("FAKE_DOCKER_AS") == "compose"
    engine.calls.append(["docker-compose" if as_compose else "docker", *sys.argv[1:]])
    status = 0 if as_compose else docker(engine, sys.argv[1:])
    engine.save(state)
    return status


if __name__ == "__main__":
    sys.exit(main())
