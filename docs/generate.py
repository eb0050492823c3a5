"""Regenerate the spec reference in docs/specs/ (a test fails when it is stale).

Usage: python docs/generate.py
"""

from __future__ import annotations

import json
from pathlib import Path

SPECS = Path(__file__).resolve().parent / "specs"


def expected_files() -> dict[str, str]:
    """File name -> content for every registered family's default spec and schema."""
    from zoo.api import resolve_spec
    from zoo.registry import get_registry
    from zoo.spec import json_schema, to_toml

    files = {}
    for name in sorted(get_registry().families):
        family, spec = resolve_spec(name)
        header = f"Default spec of the '{name}' family ({family.summary}).\n{family.paper}"
        files[f"{name}.toml"] = to_toml(spec, header)
        files[f"{name}.schema.json"] = json.dumps(json_schema(family.spec), indent=2) + "\n"
    return files


def main() -> None:
    """Write docs/specs/."""
    SPECS.mkdir(exist_ok=True)
    for name, text in expected_files().items():
        (SPECS / name).write_text(text, encoding="utf-8")
        print(f"wrote {SPECS / name}")


if __name__ == "__main__":
    main()
