"""What sampling asks of the network: chunks of min(n, batch_size) rows, never padded, and
the non-finite-weight check read once per module, not once per call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo.artifact
from zoo import Family, FamilyRecord, SamplingOptions
from zoo.core.spec import Spec
from zoo.sampling.sample import iter_samples, sample_images
from zoo.training.trainer import Trainer

CALLS: list[list[int]] = []  # the sample indices of every sampler call, in order


class Spy(Family):
    """Records the indices of each call; image j is sample j's noise (so its seed shows)."""

    trainer_class = Trainer  # never called here

    def build(self, spec):
        return nn.Linear(1, 1)

    def sample(self, model, noise, spec, options):
        CALLS.append(list(noise.indices))
        return noise.randn(1, 2, 2).sigmoid() * model.weight.sum().clamp(1, 1)


def spy() -> FamilyRecord:
    return FamilyRecord(name="spy", summary="s", paper="none", spec=Spec,
                        impl=f"{__name__}:Spy", options=SamplingOptions)


@pytest.fixture(autouse=True)
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.mark.parametrize(("n", "batch", "chunks"), [
    (1, 64, [[0]]),  # one image is a batch-1 pass, not a padded batch of 64
    (2, 64, [[0, 1]]),
    (5, 2, [[0, 1], [2, 3], [4]]),
    (64, 16, [list(range(k, k + 16)) for k in range(0, 64, 16)]),
    (0, 64, []),
])
def test_the_sampler_sees_chunks_of_min_n_and_batch_size(n, batch, chunks, calls):
    images = sample_images(spy(), nn.Linear(1, 1), None, n, seed=3, batch_size=batch)
    assert calls == chunks
    assert len(images) == n


def test_iter_samples_makes_each_chunk_when_asked():
    it = iter_samples(spy(), nn.Linear(1, 1), None, 5, seed=3, batch_size=2)
    assert CALLS == []
    assert [len(chunk) for chunk in it] == [2, 2, 1]
    assert CALLS == [[0, 1], [2, 3], [4]]


def test_image_i_depends_on_seed_and_i_alone():
    model = nn.Linear(1, 1)
    whole = sample_images(spy(), model, None, 5, seed=3, batch_size=64)
    assert torch.equal(sample_images(spy(), model, None, 1, seed=3), whole[:1])
    assert torch.equal(sample_images(spy(), model, None, 5, seed=3, batch_size=2), whole)
    assert not torch.equal(sample_images(spy(), model, None, 1, seed=4), whole[:1])


def test_the_weight_scan_runs_once_per_module_until_a_weight_changes(monkeypatch, capsys):
    scans = []
    real = zoo.artifact.nonfinite_tensors
    monkeypatch.setattr(zoo.artifact, "nonfinite_tensors",
                        lambda module: scans.append(module) or real(module))
    model = nn.Linear(1, 1)
    for _ in range(3):
        sample_images(spy(), model, None, 1)
    assert len(scans) == 1 and capsys.readouterr().err == ""
    with torch.no_grad():  # an in-place write moves the weight's version counter
        model.weight.fill_(float("nan"))
    sample_images(spy(), model, None, 1)
    assert len(scans) == 2 and "non-finite weights (NaN or inf) in weight" in (
        capsys.readouterr().err)
    sample_images(spy(), model, None, 1)  # still known bad: warned again, not rescanned
    assert len(scans) == 2 and "non-finite" in capsys.readouterr().err


def test_a_write_through_data_is_caught_by_its_nonfinite_images(capsys):
    """``p.data`` writes keep the version counter still; NaN images force a rescan."""
    model = nn.Linear(1, 1)
    sample_images(spy(), model, None, 1)
    model.weight.data.fill_(float("nan"))
    sample_images(spy(), model, None, 2, batch_size=1)
    assert capsys.readouterr().err.count("non-finite weights") == 1
