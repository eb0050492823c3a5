"""genzoo: a declarative model zoo for generative image models.

>>> import zoo
>>> model = zoo.from_pretrained("runs/dcgan")       # doctest: +SKIP
>>> model = zoo.from_pretrained("me/dcgan-mnist", revision="v1")  # doctest: +SKIP
>>> images = model.sample(16, seed=0)               # doctest: +SKIP

Importing ``zoo`` does not import torch.
"""

from zoo.api import ZooModel, build, from_pretrained, list_models, push, resolve_spec
from zoo.core.errors import ZooError
from zoo.core.family import Family, SamplingOptions
from zoo.core.features import FeatureExtractor
from zoo.core.hookspecs import hookimpl
from zoo.core.records import DatasetRecord, FamilyRecord, FeatureRecord, MetricRecord

__all__ = [
    "DatasetRecord",
    "Family",
    "FamilyRecord",
    "FeatureExtractor",
    "FeatureRecord",
    "MetricRecord",
    "SamplingOptions",
    "ZooError",
    "ZooModel",
    "build",
    "from_pretrained",
    "hookimpl",
    "list_models",
    "push",
    "resolve_spec",
]
