"""Regenerate the generated docs (a test fails when they are stale): the spec
reference in docs/specs/ and the plugin-hooks page docs/hooks.md.

Usage: python docs/generate.py
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SPECS = DOCS / "specs"
HOOKS = DOCS / "hooks.md"


def expected_files() -> dict[str, str]:
    """File name -> content for every genzoo family's default spec and schema.

    Families of other installed distributions are left out: their packages
    document their own specs.
    """
    from zoo.api import resolve_spec
    from zoo.core.plugins import HOST_DISTRIBUTION
    from zoo.core.registry import get_registry
    from zoo.core.spec import json_schema, to_toml

    files = {}
    families = get_registry().families
    for name in sorted(n for n, r in families.items() if r.plugin == HOST_DISTRIBUTION):
        family, spec = resolve_spec(name)
        header = f"Default spec of the '{name}' family ({family.summary}).\n{family.paper}"
        files[f"{name}.toml"] = to_toml(spec, header)
        files[f"{name}.schema.json"] = json.dumps(json_schema(family.spec), indent=2) + "\n"
    return files


def hooks_page() -> str:
    """docs/hooks.md: every hook in zoo/core/hookspecs.py with its signature and docstring."""
    from zoo.core import hookspecs
    from zoo.core.plugins import hook_names

    lines = ["# Plugin hooks", "",
             "<!-- Generated from zoo/core/hookspecs.py by docs/generate.py; do not edit. -->", "",
             inspect.getdoc(hookspecs) or "", "",
             "Implement a hook in the module your `zoo` entry point names:", "",
             "```python", "from zoo import hookimpl", "", "@hookimpl",
             "def register_families(register):", "    register(...)", "```", ""]
    in_source_order = sorted(hook_names(),
                             key=lambda n: inspect.getsourcelines(getattr(hookspecs, n))[1])
    for name in in_source_order:
        function = getattr(hookspecs, name)
        signature = str(inspect.signature(function)).replace("'", "")
        lines += [f"## `{name}`", "", "```python", f"def {name}{signature}", "```", "",
                  textwrap.dedent(inspect.getdoc(function) or "").strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Write docs/specs/ and docs/hooks.md."""
    SPECS.mkdir(exist_ok=True)
    for name, text in expected_files().items():
        (SPECS / name).write_text(text, encoding="utf-8")
        print(f"wrote {SPECS / name}")
    HOOKS.write_text(hooks_page(), encoding="utf-8")
    print(f"wrote {HOOKS}")


if __name__ == "__main__":
    main()
