"""The hooks a plugin may implement. Each hook receives a ``register`` callback
(or, for commands, the ``zoo`` app).

A plugin module, the one its ``zoo`` entry point names, implements any of
these with ``@zoo.hookimpl``; a function of the same name without the marker
is ignored. Hooks are called once per process, when plugins are loaded:
registering must be quick and must not import torch (``zoo list`` and
``zoo spec`` never do; a plugin that does is named in a warning).

A plugin that breaks a rule is skipped as a whole, with one warning line
naming it, its distribution and how to disable it (``ZOO_STRICT_PLUGINS=1``
makes it an error): a marked function whose name is not a hook below (the
warning names the nearest hook), a registration hook that raises or passes
something other than its record type, and a name another plugin registers
too (a built-in keeps its name; between third-party plugins, neither gets it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from zoo.core.records import DatasetRecord, FamilyRecord, FeatureRecord, MetricRecord

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register model families: call ``register(FamilyRecord(...))`` for each.

    A ``zoo.FamilyRecord`` holds the family's name, a one-line summary, the
    paper, its spec class (a ``zoo.core.spec.Spec`` subclass with ``family:
    Literal["name"]``), its sampling options (a ``zoo.SamplingOptions``
    subclass; default: none) and ``impl``, the ``"package.module:Class"`` of
    its ``zoo.Family`` subclass (imported only when a model is built, loaded
    or sampled, so it may import torch). What the family can do follows from
    what the class overrides. A family name that another plugin registers too
    is skipped, with a warning naming both distributions.
    """


@hookspec
def register_datasets(register: Callable[[DatasetRecord], None]) -> None:
    """Register data sources: call ``register(DatasetRecord(...))`` for each.

    A ``zoo.DatasetRecord`` names the source (the value of ``data.source``),
    a summary, and ``load``, a ``"module:function"`` that takes the spec's
    ``DataSpec`` and a split (``"train"`` or ``"test"``) and returns one of:

    - ``zoo.data.ImageData``: the split in memory (uint8 N×C×H×W images,
      optional N integer labels); ``data.limit`` keeps its first images;
    - a ``zoo.data.ImageSource``: random access to a data set too large to
      decode at once. It sets ``name`` (for messages), ``keys`` (a
      ``zoo.data.KeyTable`` of every image's unique string key, sorted by
      UTF-8 bytes), ``labels`` (int64 per key, or None), ``classes`` and
      ``presplit``, and implements ``read(i)``: row ``i``'s encoded bytes or
      file path, never decoded by the source (genzoo decodes, resizes and
      skips bad images itself). Without ``presplit`` it answers the whole
      data set for either split and genzoo holds out the keys whose stable
      hash falls under ``data.held_out``; with ``presplit=True`` its rows are
      the split asked for. It is pickled into DataLoader workers: open
      handles go in attributes named ``_h...``, opened again on first use; or
    - a ``zoo.data.StreamSource`` (``data.streaming``): ``shards`` read
      start to end by ``iter_shard(i)`` as ``(key, raw, label)``; ``total``
      when known. genzoo orders, splits and decodes it (``zoo.data.stream``).

    With ``prefix=True`` the record answers every ``name:<anything>`` source;
    ``channels`` is what the source yields when ``data.channels`` is unset;
    ``extra`` is the pip extra it needs (named by ``zoo list`` and its error
    when missing).
    """


@hookspec
def register_metrics(register: Callable[[MetricRecord], None]) -> None:
    """Register evaluation metrics: call ``register(MetricRecord(...))`` for each.

    A ``zoo.MetricRecord`` names the metric, a summary, and ``compute``, a
    ``"module:function"`` imported only when ``zoo eval`` runs it, on every
    model it applies to (``needs``: capabilities the family must have,
    default ``{"sample"}``; ``sources``: data sources, empty for any)::

        def compute(model, samples, reference) -> float | dict[str, float]

    ``model`` is the loaded ``zoo.ZooModel``; ``samples`` the images ``zoo
    eval`` drew (``-n``, ``--seed``; float32 N×C×H×W in [0, 1]), or ``None``
    unless ``needs`` has ``"sample"``; ``reference`` the held-out split of
    the model's data source as the model was trained on it (float32 in [0,
    1] at its size and channels, binarised as ``data.binarize`` says). A
    number goes to ``metrics.json["eval"]["NAME"]``, a dict to
    ``["eval"]["NAME.KEY"]``; both reach the model card. A metric that raises
    is one warning line; the other metrics still run.
    """


@hookspec
def register_features(register: Callable[[FeatureRecord], None]) -> None:
    """Register feature networks for ``zoo eval --features NAME``: call
    ``register(FeatureRecord(...))`` for each.

    A ``zoo.FeatureRecord`` names the network, a summary, and ``load``, a
    ``"module:function"`` imported only when the features are used. Called with no
    arguments, it returns a ``zoo.FeatureExtractor``: ``dims`` (features per image),
    ``identity`` (a string that changes whenever the features would: the weights'
    digest; it keys the cached reference statistics), ``convention`` (one line naming
    the network, its weights and how it resizes and scales its input; recorded in
    ``metrics.json``), ``batch_size`` and::

        def __call__(self, images: Tensor) -> Tensor   # uint8 N×3×H×W -> float32 N×dims

    genzoo quantises every image to uint8 (``round(255 x)``) and repeats a grey channel
    three times before calling it, so samples and real images reach it alike; the
    extractor resizes, normalises and moves them to its device itself, and returns
    features on the CPU. ``sources`` makes it the default for models trained on those
    data sources (the built-in ``digits`` classifier for the digit sets; ``inception``
    otherwise). Missing weights: raise ``zoo.core.errors.WeightsError`` with one line
    naming the file and where to put it.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``zoo`` command: ``cli`` is its typer app.

    Decorate functions with ``@cli.command("name")`` (or add a sub-app with
    ``cli.add_typer``). Import heavy modules inside the command, not at
    registration; raise ``zoo.ZooError`` for bad input, which the command
    line prints as one line with exit status 2. A name the command line
    already has (``build``, another plugin's) makes the plugin broken.
    """
