"""Rewrite references to the old flat ``zoo`` modules to the layered ones (issue 19).

    python scripts/relayer.py [PATH ...]     # default: the repository's code and docs

Rewrites ``from zoo.X import a, b`` (splitting it where the names moved to
different modules), ``import zoo.X``, dotted references (``zoo.train.fit``,
``"zoo.train.Trainer"`` in a monkeypatch, ``::: zoo.spec`` in the docs),
``module:name`` references (``"zoo.train:Trainer"``) and file paths
(``zoo/spec.py``), and ``zoo visualize MODEL --what MODE`` (docs, tests) to
``zoo visualize MODE MODEL``; then sorts the imports of the Python files it changed (ruff)
and shows lines grown past the limit. Idempotent: no new module name is an old
one, so a second run changes nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = ["zoo", "plugins", "examples", "tests", "bench", "docs", "README.md",
                 "pyproject.toml", "mkdocs.yml", "scripts"]
#: Pages that name the old paths on purpose (how to migrate).
MIGRATION_DOCS = {ROOT / "docs" / "architecture.md", ROOT / "docs" / "writing-a-plugin.md"}
SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".sh"}

#: Whole modules that moved.
MODULES = {
    **{f"zoo.{m}": f"zoo.core.{m}" for m in (
        "errors", "spec", "family", "records", "hookspecs", "plugins", "registry", "licenses",
        "home")},
    "zoo.sample": "zoo.sampling.sample",
    "zoo.sinks": "zoo.sampling.sinks",
    **{f"zoo.{m}": f"zoo.folder.{m}" for m in ("card", "write")},
    **{f"zoo.{m}": f"zoo.training.{m}" for m in ("checkpoint", "gan", "launch", "lock")},
    "zoo.evaluate": "zoo.evaluation.evaluate",
    "zoo.features": "zoo.evaluation.features",
    "zoo.train": "zoo.training.loop",  # what is not listed in SYMBOLS stays with the loop
}

#: Names that left their module (module -> name -> new module).
SYMBOLS = {
    "zoo.train": {
        **dict.fromkeys(("bf16_supported", "make_accelerator", "seed_everything"),
                        "zoo.training.runtime"),
        **dict.fromkeys(("check_global_batch", "Draws", "LOCAL", "average_gradients",
                         "mean_over_processes", "epoch_order", "any_process"),
                        "zoo.training.distributed"),
        "Trainer": "zoo.training.trainer",
        **dict.fromkeys(("CHECKPOINT_SUFFIX", "checkpoint_dir", "check_destination",
                         "StopOnSignal", "_resume_source"), "zoo.training.destination"),
        "Progress": "zoo.training.progress",
    },
    "zoo.artifact": dict.fromkeys(("downloaded", "check_data_path"), "zoo.hub"),
    "zoo.visualize": dict.fromkeys(("listing", "read_index", "FOLDER", "INDEX"),
                                   "zoo.folder.gallery"),
}


def target(module: str, name: str | None) -> str:
    """Where ``name`` of old module ``module`` lives now (``module`` itself if unmoved)."""
    if name is not None and name in SYMBOLS.get(module, {}):
        return SYMBOLS[module][name]
    return MODULES.get(module, module)


def package_target(name: str) -> str | None:
    """``from zoo import NAME`` of a moved module: the package it is in now."""
    new = MODULES.get(f"zoo.{name}")
    return new.rsplit(".", 1)[0] if new else None


FROM = re.compile(
    r"^(?P<indent>[ \t]*)from[ \t]+(?P<mod>zoo(?:\.\w+)*)[ \t]+import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#]*?)(?P<comment>[ \t]*#[^\n]*)?$", re.M)
DOTTED = re.compile(r"(?<![\w.])(zoo(?:\.\w+)+)(?::(\w+))?")
#: ``zoo visualize`` became a command group: ``--what MODE`` is now the sub-command.
VISUALIZE_CLI = re.compile(r"zoo visualize (?:(?P<model>(?!--)\S+) )?--what (?P<mode>[\w-]+)")
VISUALIZE_TEST = re.compile(r'"visualize", (?P<model>[^,()]+), "--what", (?P<mode>"[\w-]+")')
FILE = re.compile(r"(?<![\w/.-])zoo/(\w+)\.(py|toml)\b")


def _split_names(raw: str) -> list[str]:
    raw = raw.strip().strip("()")
    return [n.strip() for n in raw.replace("\\\n", " ").split(",") if n.strip()]


def _render(indent: str, module: str, names: list[str], width: int = 100) -> str:
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= width or len(names) == 1:
        return line
    inner = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{inner}{indent})"


def _rewrite_from(match: re.Match[str]) -> str:
    indent, module, comment = match["indent"], match["mod"], match["comment"] or ""
    names = _split_names(match["names"])
    if not names:
        return match[0]
    groups: dict[str, list[str]] = {}
    if module == "zoo":
        moved = [n for n in names if package_target(n.split(" as ")[0])]
        if not moved:
            return match[0]
        for n in names:
            groups.setdefault(package_target(n.split(" as ")[0]) or "zoo", []).append(n)
    else:
        if module not in MODULES and module not in SYMBOLS:
            return match[0]
        for n in names:
            groups.setdefault(target(module, n.split(" as ")[0]), []).append(n)
        if list(groups) == [module]:  # nothing moved
            return match[0]
    # names keep their order: a subset of a sorted import list is still sorted
    lines = [_render(indent, mod, ns) for mod, ns in sorted(groups.items())]
    return "\n".join(lines) + comment


def _rewrite_dotted(match: re.Match[str]) -> str:
    dotted, attr = match[1], match[2]
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        module = ".".join(parts[:cut])
        if module in MODULES or module in SYMBOLS:
            rest = parts[cut:]
            name = rest[0] if rest else attr
            new = target(module, name)
            if new == module:
                return match[0]
            tail = "".join(f".{p}" for p in rest) + (f":{attr}" if attr else "")
            return new + tail
    return match[0]


def _rewrite_file(match: re.Match[str]) -> str:
    name, suffix = match[1], match[2]
    if suffix == "toml":
        return "zoo/core/registry.toml" if name == "registry" else match[0]
    new = MODULES.get(f"zoo.{name}")
    return new.replace(".", "/") + ".py" if new else match[0]


def rewrite(text: str) -> str:
    """``text`` with every old module reference replaced."""
    text = FROM.sub(_rewrite_from, text)
    text = DOTTED.sub(_rewrite_dotted, text)
    text = VISUALIZE_CLI.sub(
        lambda m: f"zoo visualize {m['mode']}" + (f" {m['model']}" if m["model"] else ""), text)
    text = VISUALIZE_TEST.sub(lambda m: f'"visualize", {m["mode"]}, {m["model"]}', text)
    return FILE.sub(_rewrite_file, text)


def files(paths: list[str]) -> list[Path]:
    """The text files under ``paths`` (relative to the repository root)."""
    found = []
    for p in paths:
        path = ROOT / p
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [f for f in sorted(path.rglob("*")) if f.is_file() and f.suffix in SUFFIXES
                      and "peers" not in f.parts and "__pycache__" not in f.parts]
    return [f for f in found if f.name not in ("relayer.py", "import_graph.py")
            and f.resolve() not in MIGRATION_DOCS]


def main() -> None:
    changed = 0
    rewritten = []
    for path in files(sys.argv[1:] or DEFAULT_PATHS):
        old = path.read_text(encoding="utf-8")
        new = rewrite(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed += 1
            if path.suffix == ".py":
                rewritten.append(path)
            print(f"rewrote {path}")
    print(f"{changed} file(s) changed")
    if rewritten:  # a renamed module may sort elsewhere in its import block
        subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "I", "--fix", "-q",
                        *map(str, rewritten)], cwd=ROOT, check=False)
        # longer names may push a line past the limit: shown, for a hand fix
        subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "E501", "-q",
                        "--output-format", "concise", *map(str, rewritten)], cwd=ROOT,
                       check=False)


if __name__ == "__main__":
    main()
