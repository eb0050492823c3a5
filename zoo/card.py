"""The model card (``README.md``) with YAML front matter the Hugging Face Hub understands."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.records import FamilyRecord
    from zoo.spec import Spec

DATASET_IDS = {"mnist5k": "mnist", "digits": "sklearn-digits", "torchvision:MNIST": "mnist",
               "torchvision:CIFAR10": "cifar10"}


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value)  # JSON scalars are valid YAML


def front_matter(family: FamilyRecord, spec: Spec, metrics: dict[str, Any]) -> str:
    """YAML front matter: library, tags, pipeline, datasets, license, metrics."""
    lines = ["---", "library_name: genzoo", f"license: {spec.hub.license}",
             "pipeline_tag: unconditional-image-generation", "tags:",
             "- genzoo", f"- {family.name}", "- image-generation"]
    dataset = DATASET_IDS.get(spec.data.source)
    if dataset:
        lines += ["datasets:", f"- {dataset}"]
    evaluation = metrics.get("eval", {})
    if evaluation:
        lines += ["model-index:", f"- name: {_yaml_scalar(spec.hub.repo_id or family.name)}",
                  "  results:", "  - task:", "      type: unconditional-image-generation",
                  "    dataset:", f"      name: {_yaml_scalar(spec.data.source)}",
                  f"      type: {_yaml_scalar(dataset or spec.data.source)}", "    metrics:"]
        for key, value in sorted(evaluation.items()):
            if isinstance(value, int | float):
                lines += [f"    - type: {key}", f"      value: {_yaml_scalar(value)}"]
    lines.append("---")
    return "\n".join(lines)


def render_card(
    family: FamilyRecord, spec: Spec, metrics: dict[str, Any], parameters: int,
    spec_toml: str, extra_images: dict[str, str] | None = None, sampling_note: str = "",
) -> str:
    """The whole model card as Markdown."""
    name = spec.hub.repo_id or f"{family.name} model"
    where = spec.hub.repo_id or "path/to/this/folder"
    rows = []
    for section, values in metrics.items():
        for key, value in values.items() if isinstance(values, dict) else []:
            if isinstance(value, int | float | str):
                rows.append(f"| {section}.{key} | {value} |")
    images = "".join(f"\n![{alt}]({path})\n" for alt, path in (extra_images or {}).items())
    return f"""{front_matter(family, spec, metrics)}

# {name}

A **{family.name}** model ({family.summary}) trained with
[genzoo](https://github.com/genzoo/genzoo) on `{spec.data.source}` at
{spec.data.image_size}×{spec.data.image_size}. Parameters: {parameters:,}.

Paper: {family.paper}

![samples](samples.png)
{chr(10) + sampling_note + chr(10) if sampling_note else ""}{images}
## Use it

```python
import zoo
model = zoo.from_pretrained("{where}")
images = model.sample(16, seed=0)   # float tensor in [0, 1], N×C×H×W
```

```console
$ zoo sample {where} -n 64 --seed 0 -o grid.png
```

## Metrics

| metric | value |
|---|---|
{chr(10).join(rows) if rows else "| (none yet) | |"}

## Training spec

```toml
{spec_toml.rstrip()}
```
"""
