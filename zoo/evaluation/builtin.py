"""The built-in evaluation plugin (a core plugin): the feature networks (the digit classifier
and Inception-v3) and the Parzen-window metric."""

from __future__ import annotations

from zoo.core.hookspecs import hookimpl
from zoo.core.records import FeatureRecord, MetricRecord

#: The MNIST data sets: the digit classifier's class metrics apply to models trained on them.
DIGIT_SOURCES = ("mnist5k", "torchvision:MNIST")
#: The data sets the digit classifier is the default feature network for (the bundled 8x8
#: scikit-learn digits too: upsampled, they are still digits to it).
DIGIT_FEATURE_SOURCES = (*DIGIT_SOURCES, "digits")


@hookimpl
def register_features(register) -> None:
    """Register ``digits`` (the project's own classifier, for digit data) and ``inception``
    (the standard FID network, torch-fidelity's port of TF-Inception 2015-12-05)."""
    register(FeatureRecord("digits", "128-d features of genzoo's digit classifier (trained "
                           "once on mnist5k, cached): FID on digits without downloads",
                           "zoo.evaluation.features:load_digit_features",
                           sources=DIGIT_FEATURE_SOURCES))
    register(FeatureRecord("inception", "2048-d pool3 features of Inception-v3 (TF 2015-12-05 "
                           "weights, torch-fidelity's port): the standard FID/KID features",
                           "zoo.evaluation.inception:load_inception"))


@hookimpl
def register_metrics(register) -> None:
    """Register ``parzen``: the Parzen-window log-likelihood of every sampling family's
    samples (the GAN paper's yardstick, :mod:`zoo.evaluation.parzen`)."""
    register(MetricRecord("parzen", "Parzen-window log-likelihood of held-out images under a "
                          "Gaussian kernel on the samples, sigma chosen on a validation half "
                          "(Goodfellow et al. 2014; nats, ll +- se)",
                          "zoo.evaluation.parzen:parzen_metric"))
