"""How a run executes (the spec's ``run`` section) is not part of what the model is.

Execution settings stay out of the spec hash, may change on ``--resume`` and
are recorded as provenance; spec_version 1 documents and model folders (with
those keys under ``train``) still validate, load and resume.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from conftest import MICRO
from safetensors.torch import load_file, save_file
from test_build import assert_same_tensors

import zoo
from zoo.api import resolve_spec
from zoo.artifact import record_checksums
from zoo.core.errors import ArtifactError, SpecError
from zoo.core.spec import V1_EXECUTION_KEYS, document_hash, spec_hash
from zoo.training.loop import Interrupted, fit

RECIPE = [*MICRO, "train.precision=fp32"]  # the micro_dcgan fixture's recipe
OTHER_RUN = ["run.device=cpu", "run.fused_optimizer=false", "run.channels_last=false",
             "run.compile=true", "run.compile_mode=max-autotune", "run.sync_batchnorm=true",
             "run.log_every=3", "run.checkpoint_every=7"]


def test_execution_settings_leave_the_spec_hash_alone():
    _, spec = resolve_spec("dcgan", None, RECIPE)
    _, other = resolve_spec("dcgan", None, [*RECIPE, *OTHER_RUN])
    assert other.run != spec.run and spec_hash(other) == spec_hash(spec)
    _, bf16 = resolve_spec("dcgan", None, MICRO)  # precision is recipe: it changes the numbers
    assert spec_hash(bf16) != spec_hash(spec)


def test_a_family_chooses_its_execution_defaults():
    assert resolve_spec("dcgan", None, [])[1].run.channels_last
    assert not resolve_spec("ddpm", None, [])[1].run.channels_last


def test_an_execution_key_under_train_says_where_it_went():
    with pytest.raises(SpecError, match=r"'train\.channels_last' is an execution setting since "
                                        r"spec_version 2: set 'run\.channels_last'"):
        resolve_spec("dcgan", None, ["train.channels_last=false"])


def to_v1(doc: dict) -> dict:
    """A spec_version 2 document in the spec_version 1 layout (execution keys in train)."""
    doc = json.loads(json.dumps(doc))
    run = doc.pop("run")  # keys added to run since spec_version 2 have no version 1 place
    doc["train"].update({key: run[key] for key in V1_EXECUTION_KEYS})
    doc["spec_version"] = 1
    return doc


def without_none(doc):
    """``doc`` without unset (None) values, at any depth: TOML has no null."""
    if isinstance(doc, dict):
        return {k: without_none(v) for k, v in doc.items() if v is not None}
    return doc


def test_a_version_1_spec_file_validates_to_the_same_model(tmp_path):
    import tomli_w

    _, want = resolve_spec("dcgan", None, [*RECIPE, "run.channels_last=false", "run.log_every=5",
                                           "run.device=cpu"])
    v1 = to_v1(want.model_dump(mode="json"))
    assert set(V1_EXECUTION_KEYS) <= set(v1["train"])
    path = tmp_path / "v1.toml"
    path.write_text(tomli_w.dumps(without_none(v1)))
    assert resolve_spec(None, path)[1] == want
    partial = tmp_path / "partial.toml"  # only some keys, as a hand-written file has them
    partial.write_text('spec_version = 1\nfamily = "dcgan"\n[train]\nchannels_last = false\n'
                       'log_every = 5\nseed = 3\n')
    got = resolve_spec(None, partial)[1]
    assert (got.run.channels_last, got.run.log_every, got.train.seed) == (False, 5, 3)
    mixed = tmp_path / "mixed.toml"
    mixed.write_text('spec_version = 1\nfamily = "dcgan"\n[run]\nlog_every = 5\n')
    with pytest.raises(SpecError, match=r"spec_version 1 has no \[run\] section"):
        resolve_spec(None, mixed)


def test_builds_that_differ_only_in_execution_share_their_hash(micro_dcgan, tmp_path):
    family, spec = resolve_spec("dcgan", None, [*RECIPE, "run.channels_last=false",
                                                "run.fused_optimizer=false", "run.log_every=4"])
    out = fit(family, spec, tmp_path / "other", progress=False)
    a, b = (json.loads((f / "config.json").read_text()) for f in (micro_dcgan, out))
    assert a["spec_hash"] == b["spec_hash"]
    assert (a["spec"]["run"]["channels_last"], b["spec"]["run"]["channels_last"]) == (True, False)
    runs = json.loads((out / "metrics.json").read_text())["train"]["runs"]
    assert [(r["from_step"], r["to_step"], r["run"]["log_every"]) for r in runs] == [(0, 20, 4)]
    assert runs[0]["device"] == "cpu" and runs[0]["precision"] == "fp32"


def interrupted_at_10(tmp_path, overrides=()):
    """A micro build stopped at step 10 of 20 (as Ctrl-C would); returns its folder."""
    family, spec = resolve_spec("dcgan", None, [*RECIPE, *overrides])
    out = tmp_path / "run"

    def stop_at_10(step: int) -> None:
        if step == 10:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        fit(family, spec, out, progress=False, on_step=stop_at_10)
    return out


def test_resume_with_other_cadence_is_bitwise_the_straight_build(micro_dcgan, tmp_path):
    out = interrupted_at_10(tmp_path)
    family, changed = resolve_spec("dcgan", None, [*RECIPE, "train.lr=0.001",
                                                   "run.log_every=3"])
    with pytest.raises(ArtifactError, match=r"the spec changed at train\.lr \(0\.0002 -> "
                                            r"0\.001\)$"):  # the recipe may not change
        fit(family, changed, out, resume=True, progress=False)
    family, spec = resolve_spec("dcgan", None, [*RECIPE, "run.log_every=3",
                                                "run.checkpoint_every=4"])
    fit(family, spec, out, resume=True, progress=False)
    assert_same_tensors(out / "model.safetensors", micro_dcgan / "model.safetensors")
    runs = json.loads((out / "metrics.json").read_text())["train"]["runs"]
    assert [(r["from_step"], r["to_step"], r["run"]["log_every"]) for r in runs] == [
        (0, 10, 10), (10, 20, 3)]


def test_resume_with_other_layout_and_optimizer_kernel(micro_dcgan, tmp_path):
    """Channels-last on -> off and the fused Adam kernel -> the plain one: no "spec changed"
    refusal, and the weights match the straight build up to rounding."""
    out = interrupted_at_10(tmp_path)
    family, spec = resolve_spec("dcgan", None, [*RECIPE, "run.channels_last=false",
                                                "run.fused_optimizer=false"])
    fit(family, spec, out, resume=True, progress=False)
    got, want = load_file(str(out / "model.safetensors")), \
        load_file(str(micro_dcgan / "model.safetensors"))
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    config = json.loads((out / "config.json").read_text())
    assert config["spec"]["run"]["channels_last"] is False  # provenance of the last session
    assert config["spec_hash"] == json.loads((micro_dcgan / "config.json").read_text())[
        "spec_hash"]


def as_version_1(folder):
    """Rewrite a model folder as genzoo wrote it with spec_version 1: config.json's spec and
    hash, the weights' header hash, the training state's resume spec, the checksums."""
    config = json.loads((folder / "config.json").read_text())
    config["spec"] = to_v1(config["spec"])
    config["spec_hash"] = document_hash(config["spec"])
    (folder / "config.json").write_text(json.dumps(config))
    weights = folder / "model.safetensors"
    save_file(load_file(str(weights)), str(weights),
              metadata={"format": config["format"], "family": "dcgan",
                        "spec_hash": config["spec_hash"]})
    meta_path = folder / "training_state" / "state.json"
    meta = json.loads(meta_path.read_text())
    resume = json.loads(json.dumps(config["spec"]))
    for section in ("sample", "hub"):
        resume.pop(section)
    for key in ("max_steps", "epochs", "log_every", "checkpoint_every"):
        resume["train"].pop(key)
    meta["resume_spec"] = resume
    meta.pop("runs")
    meta_path.write_text(json.dumps(meta))
    record_checksums(folder)
    return config


def test_a_version_1_model_folder_loads_and_resumes(micro_dcgan, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(micro_dcgan, old)
    config = as_version_1(old)
    assert config["spec_hash"] != json.loads((micro_dcgan / "config.json").read_text())[
        "spec_hash"]
    model = zoo.from_pretrained(old)
    assert model.spec.spec_version == 2 and model.spec.run.channels_last
    assert torch.equal(model.sample(4, seed=1), zoo.from_pretrained(micro_dcgan).sample(4, seed=1))
    # --resume for more steps, with another cadence, from the version 1 training state
    family, spec = resolve_spec("dcgan", None, [*RECIPE, "train.max_steps=22",
                                                "run.log_every=1"])
    fit(family, spec, old, resume=True, progress=False)
    runs = json.loads((old / "metrics.json").read_text())["train"]["runs"]
    assert [(r["from_step"], r["to_step"]) for r in runs] == [(20, 22)]
    assert zoo.from_pretrained(old).spec.train.max_steps == 22


@pytest.mark.parametrize("fused", [False, True])
def test_a_resumed_optimizer_steps_with_the_new_kernel_setting(micro_dcgan, fused):
    """The checkpoint's Adam hyper-parameters come back, but not its kernel choice
    (torch's load_state_dict would otherwise restore the saved ``fused`` flag)."""
    from zoo.training.checkpoint import load_training_state
    from zoo.training.runtime import make_accelerator

    family, spec = resolve_spec("dcgan", None, [*RECIPE, f"run.fused_optimizer={fused}"])
    impl = family.load()
    trainer = impl.trainer(spec, impl.build(spec), make_accelerator(spec)[0])
    saved = json.loads((micro_dcgan / "training_state" / "state.json").read_text())
    assert {g["fused"] for o in saved["optimizers"].values() for g in o["param_groups"]} == {True}
    load_training_state(micro_dcgan / "training_state", trainer, torch.Generator(), spec)
    for optimizer in trainer.optimizers.values():
        assert all(bool(g["fused"]) is fused for g in optimizer.param_groups)
        assert all(g["lr"] == 2e-4 and tuple(g["betas"]) == (0.5, 0.999)
                   for g in optimizer.param_groups)


def test_a_checkpoint_from_before_a_spec_key_existed_resumes(micro_dcgan, tmp_path):
    """A key added to a family's spec since the checkpoint was written takes its default:
    no "spec changed" refusal; a real change (or the new key set otherwise) still is one."""
    from zoo.core.errors import ArtifactError
    from zoo.training.checkpoint import load_training_state
    from zoo.training.runtime import make_accelerator

    state = tmp_path / "training_state"
    shutil.copytree(micro_dcgan / "training_state", state)
    meta = json.loads((state / "state.json").read_text())
    assert meta["resume_spec"]["train"].pop("ema_decay") == 0.0  # "written before it existed"
    (state / "state.json").write_text(json.dumps(meta))

    def resume(*sets: str) -> None:
        family, spec = resolve_spec("dcgan", None, [*RECIPE, *sets])
        impl = family.load()
        trainer = impl.trainer(spec, impl.build(spec), make_accelerator(spec)[0])
        load_training_state(state, trainer, torch.Generator(), spec)

    resume()
    with pytest.raises(ArtifactError, match=r"the spec changed at train.ema_decay"):
        resume("train.ema_decay=0.5")
    with pytest.raises(ArtifactError, match=r"the spec changed at train.lr"):
        resume("train.lr=0.01")
