"""The model card (``README.md``) with YAML front matter the Hugging Face Hub understands."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec

DATASET_IDS = {"mnist5k": "mnist", "digits": "sklearn-digits", "torchvision:MNIST": "mnist",
               "torchvision:CIFAR10": "cifar10"}
#: Numbers in ``metrics.json["eval"]`` that are settings of the evaluation, not scores
#: (a feature network's own are ``NAME@FEATURES``: the part before ``@`` is matched).
SETTINGS = {"samples", "seed", "iwae_k", "kid_subset_size", "reference_images",
            "train_images", "memorisation_threshold"}
#: Numbers in ``metrics.json["eval"]`` that describe references, not the model: the real
#: data's own distance, the judging classifier, the mean-image and untrained baselines.
REFERENCES = {"classifier_accuracy", "mean_image_mse"}
TASK = "unconditional-image-generation"
#: The memorisation strip ``zoo eval`` writes into a model folder, and the
#: ``metrics.json["eval"]`` key naming the feature network it was found with.
MEMORISATION, STRIP_FEATURES = "memorisation.png", "memorisation_strip"
#: The ``metrics.json`` section ``zoo probe`` writes, and its feature sets in table order.
PROBE, PROBE_KINDS = "probe", ("features", "pixels", "random")


def model_scores(metrics: dict[str, Any]) -> dict[str, int | float]:
    """The model's own scores in ``metrics.json["eval"]`` (what goes into ``model-index``):
    numbers that are neither evaluation settings nor reference or baseline figures."""
    scores = metrics.get("eval", {})
    return {k: v for k, v in sorted(scores.items() if isinstance(scores, dict) else [])
            if isinstance(v, int | float) and not isinstance(v, bool)
            and k.partition("@")[0] not in SETTINGS | REFERENCES
            and not k.startswith(("baseline_", "reference_", "untrained_"))}


def memorisation_caption(scores: dict[str, Any]) -> str:
    """What the memorisation strip shows, with the fraction of memorised samples and the
    feature network when ``metrics.json["eval"]`` records them."""
    text = ("Memorisation check (`zoo eval`): top row, the samples closest to a training "
            "image; bottom row, their nearest training images.")
    features = scores.get(STRIP_FEATURES)
    fraction = scores.get(f"memorised@{features}") if isinstance(features, str) else None
    if isinstance(fraction, int | float) and not isinstance(fraction, bool):
        text += (f" {100 * fraction:.1f} % of the samples are closer to a training image "
                 f"than 99 % of held-out images come (features `{features}`).")
    return text


#: Sentences shown above a model folder's top-level images, by file name: a function of
#: ``metrics.json["eval"]``.
CAPTIONS = {MEMORISATION: memorisation_caption}


def image_caption(path: str, metrics: dict[str, Any]) -> str:
    """The sentence for a card image (:data:`CAPTIONS`), or "" when it has none."""
    caption = CAPTIONS.get(path)
    scores = metrics.get("eval")
    return caption(scores if isinstance(scores, dict) else {}) if caption else ""


def paper_link(paper: str) -> str:
    """The paper reference as Markdown, linked to arXiv when it names an arXiv id."""
    match = re.search(r"arXiv:(\d{4}\.\d{4,5})", paper)
    return f"[{paper}](https://arxiv.org/abs/{match.group(1)})" if match else paper


def front_matter(family: FamilyRecord, spec: Spec, metrics: dict[str, Any],
                 repo_id: str | None = None) -> str:
    """YAML front matter (library, license, pipeline, tags, datasets, model-index), written
    by ``huggingface_hub``'s ``ModelCardData`` so no value can break or add to the YAML."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = DATASET_IDS.get(spec.data.source)
    name = repo_id or spec.hub.repo_id or family.name
    results = [EvalResult(task_type=TASK, dataset_type=dataset or spec.data.source,
                          dataset_name=spec.data.source, metric_type=key, metric_value=value)
               for key, value in model_scores(metrics).items()]
    data = ModelCardData(
        library_name="genzoo", license=spec.hub.license, license_name=spec.hub.license_name,
        pipeline_tag=TASK, tags=["genzoo", family.name, "image-generation"],
        datasets=[dataset] if dataset else None,
        model_name=name if results else None, eval_results=results or None)
    order = ["library_name", "license", "license_name", "pipeline_tag", "tags", "datasets"]
    return f"---\n{data.to_yaml(original_order=order)}\n---"


def metric_items(metrics: dict[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """``metrics.json`` flattened to (``section.key``, value) for every number or string
    one level down (sections in ``skip`` left out), as the card's metrics table lists it."""
    return [(f"{section}.{key}", value) for section, values in metrics.items()
            if section not in skip and isinstance(values, dict)
            for key, value in values.items() if isinstance(value, int | float | str)]


def render_card(
    family: FamilyRecord, spec: Spec, metrics: dict[str, Any], parameters: int,
    spec_toml: str, extra_images: dict[str, str] | None = None, sampling_note: str = "",
    repo_id: str | None = None, revision: str | None = None,
    visuals: list[tuple[str, str]] | None = None,
) -> str:
    """The whole model card as Markdown; ``repo_id``/``revision``: where it is published;
    ``visuals``: (path, caption) of the folder's ``zoo visualize`` images."""
    repo_id = repo_id or spec.hub.repo_id
    name = repo_id or f"{family.name} model"
    where = repo_id or "path/to/this/folder"
    pinned = f', revision="{revision}"' if repo_id and revision not in (None, "main") else ""
    at = f"@{revision}" if repo_id and revision not in (None, "main") else ""
    rows = [f"| {key} | {value} |" for key, value in metric_items(metrics, skip=(PROBE,))]
    images = ""
    for alt, path in (extra_images or {}).items():
        caption = image_caption(path, metrics)
        images += (f"\n{caption}\n" if caption else "") + f"\n![{alt}]({path})\n"
    return f"""{front_matter(family, spec, metrics, repo_id)}

# {name}

A **{family.name}** model ({family.summary}) trained with
[genzoo](https://github.com/genzoo/genzoo) on `{spec.data.source}` at
{spec.data.image_size}×{spec.data.image_size}. Parameters: {parameters:,}.

Paper: {paper_link(family.paper)}

![samples](samples.png)
{chr(10) + sampling_note + chr(10) if sampling_note else ""}{images}
## Use it

```python
import zoo
model = zoo.from_pretrained("{where}"{pinned})
images = model.sample(16, seed=0)   # float tensor in [0, 1], N×C×H×W
```

```console
$ zoo sample {where}{at} -n 64 --seed 0 -o grid.png
```

## Metrics

| metric | value |
|---|---|
{chr(10).join(rows) if rows else "| (none yet) | |"}
{probe_section(metrics.get(PROBE))}{visuals_section(visuals or [])}
## Training spec

```toml
{spec_toml.rstrip()}
```
"""


def probe_section(scores: Any) -> str:
    """The card's "Linear probe" table from ``metrics.json["probe"]`` (``zoo probe``): held-out
    accuracy (%) per label count of the model's features, raw pixels and a random network
    of the same architecture, mean ± std over seeds; nothing when there are no scores."""
    if not isinstance(scores, dict):
        return ""
    counts = [k.removeprefix("features.") for k in scores
              if k.startswith("features.") and k.count(".") == 1 and k != "features.dim"]
    if not counts:
        return ""

    def cell(kind: str, count: str) -> str:
        value, std = scores.get(f"{kind}.{count}"), scores.get(f"{kind}.{count}.std")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "–"
        spread = f" ± {100 * std:.1f}" if isinstance(std, int | float) and std else ""
        return f"{100 * value:.1f}{spread}"

    dims = [f"{kind} {scores[f'{kind}.dim']:,}" for kind in PROBE_KINDS
            if isinstance(scores.get(f"{kind}.dim"), int)]
    lines = ["", "## Linear probe", "",
             "Held-out accuracy (%) of a multinomial logistic regression on frozen features "
             f"(`zoo probe`, {_count(scores.get('test_images'))} held-out images), trained "
             "with a class-balanced subset of the training labels (mean ± std over "
             f"{scores.get('seeds', '?')} seeds; all labels: one fit), beside the raw pixels "
             "and the same architecture randomly initialised. Feature dimensions: "
             f"{', '.join(dims)}.", "",
             "| labels | features | pixels | random network |", "|---|---|---|---|"]
    lines += [f"| {count} | " + " | ".join(cell(kind, count) for kind in PROBE_KINDS) + " |"
              for count in counts]
    return "\n".join(lines) + "\n"


def _count(value: Any) -> str:
    """A count with thousands separators, or "?" for anything else."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "?"


def visuals_section(visuals: list[tuple[str, str]]) -> str:
    """The card's "Inside the model" section linking ``zoo visualize`` images (or nothing)."""
    if not visuals:
        return ""
    parts = ["", "## Inside the model", "",
             "Made with `zoo visualize`; the settings of each image are in "
             "[`visualize/index.json`](visualize/index.json).", ""]
    for path, caption in visuals:
        stem = path.rsplit("/", 1)[-1].removesuffix(".png")
        parts += [f"[`{path}`]({path}): {caption}", "", f"![{stem}]({path})", ""]
    return "\n".join(parts)
