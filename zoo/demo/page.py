"""The Gradio page: a tab set per model (samples, interpolation, model card) and, for a
folder of runs, a gallery of every model side by side. Gradio is imported here only.

Every handler turns a ``ZooError`` (and any other failure) into ``gr.Error``: one line
in the page, never a traceback, and the server goes on serving.
"""

from __future__ import annotations

import functools
import inspect
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ZooError
from zoo.demo import actions
from zoo.demo.controls import UNSET, Control, controls, options_from

if TYPE_CHECKING:
    import gradio as gr

    from zoo.model import ZooModel

#: Every event of the page shares one queue: one model call at a time (CPU sampling).
QUEUE = "zoo-demo"
#: What the seed, count and interpolation widgets start at.
DEFAULT_SEED, DEFAULT_COUNT, DEFAULT_FRAMES = 0, 16, 8
#: System fonts only: the page loads nothing from outside the server.
FONTS = ("system-ui", "sans-serif")
#: Small samples are enlarged by the browser: keep their pixels sharp.
CSS = (".zoo-pixels img { image-rendering: pixelated; }\n"
       ".zoo-fill img { width: 100%; height: 100%; object-fit: contain; }")
#: Height in pixels of the sample and figure images on the page.
HEIGHT = 420


def one_line(text: str) -> str:
    """A message on one line (a ``ZooError`` is one already; anything else may not be)."""
    return " ".join(str(text).split())


def shown(fn: Callable[..., Any], parameters: list[str]) -> Callable[..., Any]:
    """``fn`` with its errors shown in the page as one line (``gr.Error``) and its API
    parameters named ``parameters`` (what ``gradio_client`` callers pass by keyword)."""
    import gradio as gr

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except ZooError as exc:
            raise gr.Error(one_line(str(exc)), print_exception=False) from None
        except Exception as exc:  # a bug, not bad input: the log gets the traceback
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(one_line(f"internal error: {type(exc).__name__}: {exc}"),
                           print_exception=False) from None

    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters])
    return run


def upload(label: str) -> gr.Image:
    """An image upload whose unreadable files are a one-line ``gr.Error`` (Gradio's own
    decoding would fail with a bare "Error")."""
    import gradio as gr

    component = gr.Image(label=label, type="filepath", sources=["upload"], format="png")
    decode = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return decode(payload)
        except Exception as exc:
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(one_line(f"{label}: {name} is not a readable image "
                                    f"({type(exc).__name__})"), print_exception=False) from None

    # per instance, not a subclass: Gradio writes a .pyi stub beside any component subclass
    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def count_slider(**options: Any) -> gr.Slider:
    """A slider whose range the handler checks (its one-line message names the demo's
    limit; Gradio's own check would log a traceback for each bad request, and would turn
    a fraction into a whole number silently)."""
    import gradio as gr

    component = gr.Slider(**options)
    component.preprocess = lambda payload: payload  # type: ignore[method-assign]
    return component


def widget(ctl: Control) -> gr.components.Component:
    """The Gradio component of one sampling option."""
    import gradio as gr

    info = ctl.description[:300] or None
    if ctl.kind == "image":
        return upload(ctl.label)
    if ctl.kind == "stages":
        return gr.Checkbox(False, label="show stages", info="The stages the sampler builds "
                           "its images in: a row per sample (zoo visualize steps).")
    if ctl.kind == "bool":
        return gr.Checkbox(bool(ctl.default), label=ctl.label, info=info)
    if ctl.kind == "choice":
        choices = [str(c.value if hasattr(c, "value") else c) for c in ctl.choices]
        default = str(getattr(ctl.default, "value", ctl.default))
        if ctl.optional or ctl.default is None:
            choices, default = [UNSET, *choices], UNSET if ctl.default is None else default
        return gr.Dropdown(choices, value=default, label=ctl.label, info=info)
    if ctl.kind in ("int", "float"):
        # the range is said, not set: the sampler's own check answers in one line, where
        # Gradio's would log a traceback for each out-of-range request
        low = "" if ctl.minimum is None else f"from {ctl.minimum} "
        high = "" if ctl.maximum is None else f"to {ctl.maximum}"
        bounds = f" ({low}{high}".rstrip() + ")" if low or high else ""
        return gr.Number(ctl.default, label=ctl.label + bounds, info=info,
                         precision=0 if ctl.kind == "int" else None,
                         placeholder="unset" if ctl.default is None else None)
    return gr.Textbox(ctl.default or "", label=ctl.label, info=info, placeholder="unset")


def slug(name: str) -> str:
    """``name`` as an API name suffix: letters, digits and underscores."""
    return re.sub(r"\W+", "_", name).strip("_").lower() or "model"


class ModelPage:
    """The tabs of one model: what each handler needs and where its PNGs go."""

    def __init__(self, model: ZooModel, name: str, folder: Path, suffix: str = "") -> None:
        self.model, self.name, self.folder, self.suffix = model, name, folder, suffix
        self.controls = controls(model.family.options)
        self.opening: dict[str, tuple[str, str | None]] = {}

    def api(self, name: str) -> str:
        """An endpoint's name, unique on a page of several models."""
        return f"{name}_{self.suffix}" if self.suffix else name

    def render(self, blocks: gr.Blocks) -> None:
        """Draw the model's tabs into the open ``gr.Blocks`` context."""
        import gradio as gr

        model = self.model
        # on a page of several models the name is a folder's; zoo sample needs its path
        gr.Markdown(header(model, self.name, str(model.path) if self.suffix else self.name))
        with gr.Tabs():
            with gr.Tab("Samples"):
                self.samples(blocks)
            if "latent" in model.family.capabilities:
                with gr.Tab("Interpolation"):
                    self.interpolation()
            with gr.Tab("Model card"):
                self.card()

    def samples(self, blocks: gr.Blocks) -> None:
        """Seed, count and the family's options; the grid (and the sampler's stages)."""
        import gradio as gr

        with gr.Row():
            with gr.Column(scale=1):
                seed = gr.Number(DEFAULT_SEED, label="seed", precision=0,
                                 info="Image i depends only on (seed, i), as in zoo sample.")
                count = count_slider(minimum=1, maximum=actions.MAX_COUNT,
                                     value=4 if actions.takes_inputs(self.model)
                                     else DEFAULT_COUNT, step=1, label="count",
                                     info=f"Images per request: at most {actions.MAX_COUNT}.")
                widgets = [widget(ctl) for ctl in self.controls]
                button = gr.Button("Sample", variant="primary")
            with gr.Column(scale=2):
                grid = gr.Image(label="samples", type="filepath", format="png",
                                interactive=False, height=HEIGHT,
                                elem_classes=["zoo-pixels", "zoo-fill"],
                                elem_id=f"zoo-grid{'-' + self.suffix if self.suffix else ''}")
                stages = gr.Image(label="stages (a row per sample)", type="filepath",
                                  format="png", interactive=False, height=HEIGHT,
                                  elem_classes=["zoo-pixels", "zoo-fill"],
                                  visible=any(c.kind == "stages" for c in self.controls))
        names = ["seed", "count", *(c.name for c in self.controls)]
        run = shown(self.sample, names)
        inputs = [seed, count, *widgets]
        button.click(run, inputs, [grid, stages], api_name=self.api("sample"),
                     concurrency_id=QUEUE)
        blocks.load(shown(self.first, names), inputs, [grid, stages],
                    api_visibility="private", concurrency_id=QUEUE)

    def first(self, *values: Any) -> tuple[str, str | None]:
        """What the page shows when it opens: sampled for the first visitor, then kept."""
        key = repr(values)
        if key not in self.opening:
            grid, strip = self.sample(*values)
            self.opening[key] = (str(actions.kept(Path(grid), self.folder)),
                                 None if strip is None
                                 else str(actions.kept(Path(strip), self.folder)))
        return self.opening[key]

    def sample(self, seed: Any, count: Any, *values: Any) -> tuple[str, str | None]:
        """The grid of ``count`` samples of ``seed`` and, if asked, the stages strip."""
        options = options_from(self.controls, list(values))
        show_stages = any(c.kind == "stages" and bool(v)
                          for c, v in zip(self.controls, values, strict=True))
        path = actions.sample_grid(self.model, self.folder, seed, count, options)
        strip = (actions.stage_strip(self.model, self.folder, seed, count, options)
                 if show_stages else None)
        return str(path), None if strip is None else str(strip)

    def interpolation(self) -> None:
        """Two seeds, frames and method; the strip between their first samples."""
        import gradio as gr

        with gr.Row():
            with gr.Column(scale=1):
                seed_a = gr.Number(0, label="seed A", precision=0)
                seed_b = gr.Number(1, label="seed B", precision=0)
                frames = count_slider(minimum=2, maximum=actions.MAX_FRAMES,
                                      value=DEFAULT_FRAMES, step=1, label="frames")
                method = gr.Radio(["slerp", "lerp"], value="slerp", label="method")
                plain = [c for c in self.controls if c.kind not in ("stages", "image")]
                widgets = [widget(ctl) for ctl in plain]
                button = gr.Button("Interpolate", variant="primary")
            with gr.Column(scale=2):
                strip = gr.Image(label="from sample 0 of seed A to sample 0 of seed B",
                                 type="filepath", format="png", interactive=False,
                                 elem_classes=["zoo-pixels", "zoo-fill"])

        def interpolate(a: Any, b: Any, n: Any, how: str, *values: Any) -> str:
            options = options_from(plain, list(values))
            return str(actions.interpolation(self.model, self.folder, a, b, n, how, options))

        names = ["seed_a", "seed_b", "frames", "method", *(c.name for c in plain)]
        button.click(shown(interpolate, names), [seed_a, seed_b, frames, method, *widgets],
                     strip, api_name=self.api("interpolate"), concurrency_id=QUEUE)

    def card(self) -> None:
        """The model card's numbers: its scores first (what ``zoo eval`` measured), then
        its figures, then all of ``metrics.json``."""
        import gradio as gr

        scores = actions.summary(self.model, self.name)["scores"]
        rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in scores.items())
        gr.Markdown("### Scores\n\n" + (f"| score | value |\n|---|---|\n{rows}" if rows else
                                        f"None yet: `zoo eval {self.name}` measures them."))
        figures = [(str(copy_into(path, self.folder)), caption)
                   for path, caption in actions.card_figures(self.model)]
        gr.Gallery(figures, label="figures", columns=3, object_fit="contain",
                   height="auto", elem_classes="zoo-pixels")
        table = "\n".join(f"| {k} | {v} |" for k, v in actions.metric_rows(self.model))
        with gr.Accordion("All of metrics.json", open=False):
            gr.Markdown(f"| metric | value |\n|---|---|\n{table or '| (none) | |'}")


def copy_into(path: Path, folder: Path) -> Path:
    """A copy of ``path`` in the page's own folder (Gradio serves files from there)."""
    target = actions.new_path(folder, path.name)
    shutil.copyfile(path, target)
    return target


def header(model: ZooModel, name: str, source: str) -> str:
    """The title lines of a model: name, family, summary, paper, parameters, data, and the
    ``zoo sample`` command (of ``source``) that writes the same grid."""
    family = model.family
    return (f"## {name}\n\n**{family.name}**: {family.summary}. {family.paper}.\n\n"
            f"Parameters: {model.num_parameters:,}. Data: `{model.spec.data.source}` at "
            f"{model.spec.data.image_size}×{model.spec.data.image_size}. "
            f"Sampling: `zoo sample {source} -n N --seed S` gives the same grid.")


def gallery(models: dict[str, ZooModel], folder: Path) -> None:
    """Every model of a folder of runs side by side: a table and a grid each."""
    import gradio as gr

    rows = [actions.summary(model, name) for name, model in models.items()]
    lines = ["| model | family | parameters | data | scores |", "|---|---|---|---|---|"]
    for row in rows:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in row["scores"].items()) or "—"
        lines.append(f"| {row['name']} | {row['family']} | {row['parameters']:,} | "
                     f"{row['data']} | {scores} |")
    gr.Markdown("\n".join(lines))
    grids = []
    for name, model in models.items():
        samples = model.path / "samples.png"
        if samples.is_file():
            grids.append((str(copy_into(samples, folder)), f"{name} ({model.family.name})"))
    gr.Gallery(grids, label="samples.png of each model", columns=min(4, max(1, len(grids))),
               object_fit="contain", height="auto", elem_classes="zoo-pixels")


def page(models: dict[str, ZooModel], folder: Path, title: str) -> gr.Blocks:
    """The page for one model (its tabs) or several (a gallery, then a tab each)."""
    import gradio as gr

    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        if len(models) == 1:
            name, model = next(iter(models.items()))
            ModelPage(model, name, folder).render(blocks)
        else:
            gr.Markdown(f"# {title}\n\n{len(models)} models side by side.")
            with gr.Tabs():
                with gr.Tab("Gallery"):
                    gallery(models, folder)
                for name, model in models.items():
                    with gr.Tab(name):
                        ModelPage(model, name, folder, slug(name)).render(blocks)
    return blocks


def theme() -> Any:
    """Gradio's default theme on system fonts (nothing is fetched from outside)."""
    import gradio as gr

    return gr.themes.Default(font=list(FONTS), font_mono=["ui-monospace", "monospace"])
