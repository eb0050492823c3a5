"""One broken or slow third-party plugin never breaks the other plugins or any command.

Fixture distributions are installed as real entry points (see test_plugins.py)
and ``zoo`` runs in a fresh process that loads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_plugins import RAISES_ON_IMPORT, RUN_ZOO, install

CLAIMS = '''
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class OwnSpec(DCGANSpec):
    family: Literal["{own}"] = "{own}"


class ClaimSpec(DCGANSpec):
    family: Literal["{claim}"] = "{claim}"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="{own}", summary="{summary}", paper="none", spec=OwnSpec,
                          impl="zoo_dcgan.model:DCGAN"))
    register(FamilyRecord(name="{claim}", summary="{summary}", paper="none", spec=ClaimSpec,
                          impl="zoo_dcgan.model:DCGAN"))


@hookimpl
def register_commands(cli):
    @cli.command("{own}-hello")
    def hello():
        print("hello from {own}")
'''

MISSPELLED_AND_A_FAMILY = '''
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class TypoSpec(DCGANSpec):
    family: Literal["typo"] = "typo"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="typo", summary="s", paper="none", spec=TypoSpec,
                          impl="zoo_dcgan.model:DCGAN"))


@hookimpl
def register_dataset(register):  # sic: register_datasets
    pass
'''

RAISES_WHILE_REGISTERING = '''
from zoo import hookimpl


@hookimpl
def register_families(register):
    register("not a record")
'''

WRONG_ARGUMENTS = '''
from zoo import hookimpl


@hookimpl
def register_families(reg):  # the hook's argument is called register
    pass
'''

IMPORTS_TORCH = '''
import torch  # at import: every zoo command pays for it

from zoo import hookimpl


@hookimpl
def register_families(register):
    pass
'''

IMPORTS_TORCH_WHEN_REGISTERING = '''
from zoo import hookimpl


@hookimpl
def register_datasets(register):
    import torch  # noqa: F401
'''


@pytest.fixture
def zoo_env(tmp_path):
    """Run ``zoo ARGS`` in a fresh process seeing the fixture distributions, with env vars."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
        full = {**os.environ, "PYTHONPATH": path}
        for name in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
            full.pop(name, None)
        full.update(env)
        return subprocess.run([sys.executable, "-c", RUN_ZOO, *args], capture_output=True,
                              text=True, env=full, timeout=120)

    return run


def warnings(proc: subprocess.CompletedProcess) -> list[str]:
    """The stderr lines of a run that succeeded; each must be a warning."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), proc.stderr
    return lines


def names(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(proc.stdout)}


def test_two_plugins_claiming_one_name_lose_it_and_every_command_still_runs(tmp_path, zoo_env):
    for letter, version in (("a", "1.0"), ("b", "2.0")):
        install(tmp_path, f"zoo-twin-{letter}", version, f"twin_{letter}",
                CLAIMS.format(own=f"own-{letter}", claim="twin", summary=letter))
    both = "zoo-twin-a,zoo-twin-b"
    listing = zoo_env("list", "--json", ZOO_LOAD_PLUGINS=both)
    lines = warnings(listing)
    assert len(lines) == 2, lines  # one per broken plugin
    for letter, version in (("a", "1.0"), ("b", "2.0")):
        line = next(line for line in lines if f"zoo-twin-{letter} {version}):" in line)
        assert line.startswith(f"warning: skipping plugin 'twin_{letter}' (zoo-twin-{letter} ")
        assert ("family 'twin' is registered twice: by plugin 'twin_a' (zoo-twin-a 1.0) and "
                "by plugin 'twin_b' (zoo-twin-b 2.0)") in line
        assert line.endswith(f"disable it with ZOO_DISABLE_PLUGINS=zoo-twin-{letter} or "
                             f"pip uninstall zoo-twin-{letter}")
    listed = names(listing)
    assert "dcgan" in listed and not {"twin", "own-a", "own-b"} & set(listed)
    plugins = zoo_env("plugins", "--json", ZOO_LOAD_PLUGINS=both)
    rows = {row["distribution"]: row for row in json.loads(plugins.stdout)}
    assert plugins.returncode == 0 and rows["genzoo"]["status"] == "loaded"
    for dist in ("zoo-twin-a", "zoo-twin-b"):
        assert rows[dist]["status"] == "broken" and rows[dist]["families"] == []
        assert "family 'twin' is registered twice" in rows[dist]["reason"]
    table = zoo_env("plugins", ZOO_LOAD_PLUGINS=both, COLUMNS="200")
    assert table.returncode == 0 and "broken: family 'twin' is registered twice" in table.stdout
    # a skipped plugin adds no commands either
    hello = zoo_env("own-a-hello", ZOO_LOAD_PLUGINS=both)
    assert hello.returncode == 2 and "No such command" in hello.stderr


def test_disabling_one_of_two_claimants_gives_the_name_to_the_other(tmp_path, zoo_env):
    for letter, version in (("a", "1.0"), ("b", "2.0")):
        install(tmp_path, f"zoo-twin-{letter}", version, f"twin_{letter}",
                CLAIMS.format(own=f"own-{letter}", claim="twin", summary=letter))
    both = "zoo-twin-a,zoo-twin-b"
    fixed = zoo_env("list", "*", "--json", ZOO_LOAD_PLUGINS=both,
                    ZOO_DISABLE_PLUGINS="zoo-twin-a")
    assert warnings(fixed) == []
    assert names(fixed)["twin"]["description"] == "b" and "own-b" in names(fixed)
    assert "own-a" not in names(fixed)
    assert zoo_env("own-b-hello", ZOO_LOAD_PLUGINS=both,
                   ZOO_DISABLE_PLUGINS="twin_a").stdout.strip() == "hello from own-b"


def test_a_third_party_plugin_never_takes_a_builtin_name(tmp_path, zoo_env):
    install(tmp_path, "zoo-evil", "0.1", "evil", CLAIMS.format(own="evil-own", claim="dcgan",
                                                               summary="not the real one"))
    listing = zoo_env("list", "--json", ZOO_LOAD_PLUGINS="zoo-evil")
    [line] = warnings(listing)
    assert line.startswith("warning: skipping plugin 'evil' (zoo-evil 0.1): family 'dcgan' is "
                           "registered twice")
    assert "genzoo's built-in one stays" in line and "ZOO_DISABLE_PLUGINS=zoo-evil" in line
    listed = names(listing)
    assert listed["dcgan"]["plugin"] == "genzoo" and "evil-own" not in listed


def test_a_misspelled_hook_skips_that_plugin_and_names_the_nearest_hook(tmp_path, zoo_env):
    install(tmp_path, "zoo-typo", "0.1", "typo_plugin", MISSPELLED_AND_A_FAMILY)
    listing = zoo_env("list", "--json", ZOO_LOAD_PLUGINS="zoo-typo")
    [line] = warnings(listing)
    assert line.startswith("warning: skipping plugin 'typo_plugin' implements an unknown hook "
                           "'register_dataset' (did you mean 'register_datasets'?)")
    assert line.endswith("disable it with ZOO_DISABLE_PLUGINS=zoo-typo or pip uninstall zoo-typo")
    assert "typo" not in names(listing) and "dcgan" in names(listing)
    plugins = zoo_env("plugins", "--json", ZOO_LOAD_PLUGINS="zoo-typo")
    assert names(plugins)["typo_plugin"]["status"] == "broken"


def test_plugins_failing_in_other_ways_are_skipped_with_one_line_each(tmp_path, zoo_env):
    install(tmp_path, "zoo-bad-record", "0.2", "bad_record", RAISES_WHILE_REGISTERING)
    install(tmp_path, "zoo-exits", "0.1", "exits", "import sys\nsys.exit(3)\n")
    install(tmp_path, "zoo-wrong-args", "0.1", "wrong_args", WRONG_ARGUMENTS)
    listing = zoo_env("list", "--json",
                      ZOO_LOAD_PLUGINS="zoo-bad-record,zoo-exits,zoo-wrong-args")
    exits, wrong_args, bad_record = warnings(listing)  # one line each: loading, registering
    assert bad_record == (
        "warning: skipping plugin 'bad_record' (zoo-bad-record 0.2) failed while registering a "
        "family: register() takes a zoo.FamilyRecord, got str; disable it with "
        "ZOO_DISABLE_PLUGINS=zoo-bad-record or pip uninstall zoo-bad-record")
    assert exits == ("warning: skipping plugin 'exits' from zoo-exits failed to import: it "
                     "called sys.exit(3); disable it with ZOO_DISABLE_PLUGINS=zoo-exits or "
                     "pip uninstall zoo-exits")
    assert wrong_args.startswith("warning: skipping plugin 'wrong_args' from zoo-wrong-args has "
                                 "an invalid hook: ")
    assert "register_families(reg)" in wrong_args
    assert "dcgan" in names(listing)


GENERATOR_HOOK = '''
from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


@hookimpl
def register_families(register):  # yields instead of calling register: its body never runs
    yield FamilyRecord(name="gen", summary="s", paper="none", spec=DCGANSpec,
                       impl="zoo_dcgan.model:DCGAN")
'''

BAD_NAMES = '''
from zoo import MetricRecord, hookimpl


@hookimpl
def register_metrics(register):
    register(MetricRecord("{name}", "a metric", "zoo.evaluation.distances:fid"))
'''


def test_a_registration_hook_that_returns_or_misnames_is_skipped(tmp_path, zoo_env):
    """A hook that returns (or yields) records instead of calling register(), and records
    named with spaces, a slash or nothing: one warning line each, the rest still runs."""
    install(tmp_path, "zoo-gen", "0.1", "gen_plugin", GENERATOR_HOOK)
    for i, name in enumerate(["my metric", "../up", ""]):
        install(tmp_path, f"zoo-name{i}", "0.1", f"name{i}", BAD_NAMES.format(name=name))
    listing = zoo_env("list", "--json",
                      ZOO_LOAD_PLUGINS="zoo-gen,zoo-name0,zoo-name1,zoo-name2")
    lines = warnings(listing)
    assert len(lines) == 4, lines
    gen = next(line for line in lines if "'gen_plugin'" in line)
    assert "register_families() returned a generator; it must call register(record)" in gen
    for i, name in enumerate(["my metric", "../up", ""]):
        line = next(line for line in lines if f"'name{i}'" in line)
        assert f"metric name {name!r} is not a name" in line
    assert "dcgan" in names(listing)


HIJACKS_BUILD = '''
from zoo import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command("hijack-ok")
    def fine():
        print("mine")

    @cli.command("build")
    def build():
        print("hijacked")
'''

RAISES_IN_COMMANDS = '''
from zoo import hookimpl


@hookimpl
def register_commands(cli):
    raise RuntimeError("boom while adding commands")
'''


def test_a_plugin_cannot_replace_a_command_nor_break_them_all(tmp_path, zoo_env):
    """A plugin that adds a command named ``build`` (or ``dedup``) replaced genzoo's silently;
    one that raised in register_commands was a traceback for every command. Both are skipped
    with one warning line, their other commands too; every other command runs."""
    install(tmp_path, "zoo-hijack", "0.1", "hijack", HIJACKS_BUILD)
    install(tmp_path, "zoo-raiser", "0.1", "raiser", RAISES_IN_COMMANDS)
    run = zoo_env("build", "dcgan", "--dry-run", ZOO_LOAD_PLUGINS="zoo-hijack,zoo-raiser")
    assert "hijacked" not in run.stdout and "[train]" in run.stdout
    hijack, raiser = warnings(run)
    assert hijack.startswith("warning: skipping plugin 'hijack' (zoo-hijack 0.1) failed while "
                             "adding commands: its command 'build' has the name of one the "
                             "command line already has; disable it with")
    assert raiser.startswith("warning: skipping plugin 'raiser' (zoo-raiser 0.1) failed while "
                             "adding commands: RuntimeError: boom while adding commands;")
    other = zoo_env("hijack-ok", ZOO_LOAD_PLUGINS="zoo-hijack")
    assert other.returncode == 2 and "No such command 'hijack-ok'" in other.stderr
    assert zoo_env("dedup", "--help", ZOO_LOAD_PLUGINS="zoo-hijack").returncode == 0


@pytest.mark.parametrize("text,fragment", [
    (b'x = "\xff"\n', "not UTF-8 text"),
    (b"models = 3\n", "models must be a table, not int"),
    (b"[models]\na = 3\n", "model 'a' must be a table, not int"),
    (b"[models.a]\nfamily = 3\n", "model 'a' family must be a string, not int"),
    (b'[models.a]\nfamily = "dcgan"\nhub = 3\n', "model 'a' hub must be a table"),
    (b'[models.a]\nfamily = "dcgan"\nspec = []\n', "model 'a' spec must be a table"),
    (b"external = 3\n", "external must be a table, not int"),
])
def test_a_malformed_registry_file_is_one_line(text, fragment, tmp_path, cli, monkeypatch):
    """``ZOO_REGISTRY`` naming a file that is not what registry.toml looks like: one line
    from the commands that read it, not a traceback from every command."""
    from zoo.core.registry import get_registry

    registry = tmp_path / "registry.toml"
    registry.write_bytes(text)
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    get_registry.cache_clear()
    try:
        for args in (["list"], ["build", "a", "--dry-run"]):
            r = cli(*args)
            assert r.code == 2 and r.err.count("\n") == 1, r.err
            assert r.err.startswith(f"error: {registry}: ") and fragment in r.err, r.err
    finally:
        get_registry.cache_clear()


def test_plugin_commands_survive_main_running_twice_in_one_process(tmp_path, cli,
                                                                   monkeypatch):
    """A plugin's command is added once per app, not taken for a clash on the next call."""
    import importlib
    import textwrap

    from zoo.core.plugins import load_plugins, reset_plugins

    (tmp_path / "hello_plugin.py").write_text(textwrap.dedent('''
        from zoo import hookimpl


        @hookimpl
        def register_commands(cli):
            @cli.command("hello-twice")
            def hello():
                print("hello")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins().register(importlib.import_module("hello_plugin"), name="hello")
    try:
        for _ in range(2):
            r = cli("hello-twice")
            assert (r.code, r.out, r.err) == (0, "hello\n", "")
    finally:
        reset_plugins()


def test_disable_plugins_turns_off_third_party_and_builtin_plugins(tmp_path, zoo_env):
    install(tmp_path, "zoo-broken", "0.3", "broken_plugin", RAISES_ON_IMPORT)
    quiet = zoo_env("plugins", "--json", ZOO_DISABLE_PLUGINS="zoo-broken")  # no allow-list
    assert warnings(quiet) == []
    rows = names(quiet)
    assert rows["broken_plugin"]["status"] == "disabled"
    assert rows["broken_plugin"]["reason"] == "named in ZOO_DISABLE_PLUGINS"
    no_ddpm = zoo_env("list", "ddpm", "--json", ZOO_LOAD_PLUGINS="", ZOO_DISABLE_PLUGINS="ddpm")
    assert warnings(no_ddpm) == [] and names(no_ddpm) == {}
    build = zoo_env("build", "ddpm", "--dry-run", ZOO_LOAD_PLUGINS="",
                    ZOO_DISABLE_PLUGINS="ddpm")
    assert build.returncode == 2 and "unknown family or model 'ddpm'" in build.stderr


def test_names_in_the_plugin_lists_that_match_no_plugin_are_warned_about(tmp_path, zoo_env):
    install(tmp_path, "zoo-twin-a", "1.0", "twin_a",
            CLAIMS.format(own="own-a", claim="twin", summary="a"))
    proc = zoo_env("list", "--json", ZOO_LOAD_PLUGINS="zoo-twin-a,qqqq",
                   ZOO_DISABLE_PLUGINS="zoo-twn-a")
    first, second = warnings(proc)
    assert first.startswith("warning: ZOO_LOAD_PLUGINS names 'qqqq', which matches no installed "
                            "plugin (installed: genzoo, ")
    assert "zoo-twin-a" in first
    assert second == ("warning: ZOO_DISABLE_PLUGINS names 'zoo-twn-a', which matches no "
                      "installed plugin; did you mean 'zoo-twin-a'?")
    assert "twin" in names(proc)  # the misspelled deny-list entry disabled nothing


def test_a_plugin_that_imports_torch_is_named(tmp_path, zoo_env):
    # a stand-in torch keeps the test fast: what counts is that the plugin imports it
    (tmp_path / "torch.py").write_text("")
    install(tmp_path, "zoo-heavy", "1.0", "heavy", IMPORTS_TORCH)
    install(tmp_path, "zoo-late", "2.0", "late", IMPORTS_TORCH_WHEN_REGISTERING)
    assert warnings(zoo_env("list", ZOO_LOAD_PLUGINS="")) == []  # built-ins stay light
    for dist, label in (("zoo-heavy", "plugin 'heavy' (zoo-heavy 1.0)"),
                        ("zoo-late", "plugin 'late' (zoo-late 2.0)")):
        assert warnings(zoo_env("list", ZOO_LOAD_PLUGINS=dist)) == [
            f"warning: {label} imports torch when it loads, which adds seconds to every zoo "
            "command (even zoo list); it should import torch inside the functions that need it"]


# --------------------------------------------------------------------------- conformance kit

SLOPPY_SPEC = '''
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class SloppySpec(DCGANSpec):
    family: Literal["sloppy"] = "sloppy"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="sloppy", summary="two subtle faults", paper="none",
                          spec=SloppySpec, impl="sloppy_impl:Sloppy"))
'''

SLOPPY_IMPL = '''
import os

import torch
from zoo_dcgan.model import DCGAN, DCGANTrainer

from zoo import Family


class SloppyTrainer(DCGANTrainer):
    def start(self, images):
        # fault 2: a perturbation drawn with entropy from the OS, not from the training seed
        gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(7), "little"))
        with torch.no_grad():
            for p in self.raw_modules()["model"].parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=gen))


class Sloppy(Family):
    build, tiny, trainer_class = DCGAN.build, DCGAN.tiny, SloppyTrainer

    def sample(self, model, noise, spec, options):
        # fault 1: one generator per chunk, seeded by its first index: image i depends on
        # the chunk it lands in, which n and the batch size both change
        gen = torch.Generator().manual_seed(1_000_003 * noise.seed + noise.indices[0])
        z = torch.randn(len(noise), spec.model.latent_dim, 1, 1, generator=gen)
        return DCGAN().generate(model, z, spec, options)
'''


@pytest.fixture
def sloppy_family(tmp_path, monkeypatch):
    """A plugin registered in-process whose sampler and trainer each have a subtle fault."""
    import importlib
    import textwrap

    from zoo.core.plugins import load_plugins, reset_plugins
    from zoo.core.registry import get_registry

    (tmp_path / "sloppy_spec.py").write_text(textwrap.dedent(SLOPPY_SPEC))
    (tmp_path / "sloppy_impl.py").write_text(textwrap.dedent(SLOPPY_IMPL))
    monkeypatch.syspath_prepend(str(tmp_path))
    # for the kit's fresh-process import
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    load_plugins().register(importlib.import_module("sloppy_spec"), name="sloppy")
    get_registry.cache_clear()
    yield "sloppy"
    reset_plugins()


def test_the_kit_catches_batch_dependent_seeding_and_a_nondeterministic_trainer(sloppy_family):
    from zoo.testing.conformance import check_family

    results = {c.name: c for c in check_family(sloppy_family, ["model.base_channels=8",
                                                               "model.disc_channels=8",
                                                               "data.image_size=16"])}
    failed = {name for name, c in results.items() if not c.ok}
    assert failed == {"seeding", "reproducible training"}, results
    detail = results["seeding"].detail
    # n = 3 runs one chunk of 3 where n = 5 ran chunks of 4 and 1: image 2 moves
    assert detail.startswith("AssertionError: image i changed with the number of images "
                             "asked for: images [2] differ by up to ")
    assert detail.endswith("expected the same to 0.001")
    assert "two builds with train.seed = 0 gave different weights on CPU fp32" in results[
        "reproducible training"].detail


# --------------------------------------------------------------------------- zoo eval

METRICS_PLUGIN = '''
from typing import Literal

from zoo import FamilyRecord, MetricRecord, hookimpl
from zoo_ae import VanillaSpec


class GaussSpec(VanillaSpec):
    family: Literal["gauss-ae"] = "gauss-ae"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="gauss-ae", summary="an autoencoder with a Gaussian likelihood",
                          paper="none", spec=GaussSpec, impl="metrics_impl:GaussAE"))


@hookimpl
def register_metrics(register):
    register(MetricRecord("brightness", "mean pixel of samples and of held-out images",
                          "metrics_impl:brightness"))
    register(MetricRecord("recon-l1", "held-out L1 reconstruction error",
                          "metrics_impl:recon_l1", needs=frozenset({"reconstruct"})))
    register(MetricRecord("cifar-only", "never runs on digits", "metrics_impl:brightness",
                          sources=("torchvision:CIFAR10",)))
    register(MetricRecord("crashes", "a buggy metric", "metrics_impl:crashes"))
'''

METRICS_IMPL = '''
import math

import torch
from zoo_ae.nets import AETrainer, mlp_autoencoder

from zoo import Family

CALLS = []


class GaussAE(Family):
    """An MLP autoencoder that samples, reconstructs and has a likelihood (nothing else)."""

    trainer_class = AETrainer

    def build(self, spec):
        return mlp_autoencoder(spec)

    def sample(self, model, noise, spec, options):
        codes = model.code_mean + noise.randn(model.code_dim) @ model.code_tril.T
        return torch.sigmoid(model.decoder(codes))

    def reconstruct(self, model, x):
        return torch.sigmoid(model.decoder(model.encoder(x)))

    def log_likelihood(self, model, x, k, spec, generator):
        """log N(x; reconstruction, 0.1^2 I) per image: not an IWAE bound, but a likelihood."""
        CALLS.append(x)
        sq = ((self.reconstruct(model, x) - x) ** 2).flatten(1).sum(1)
        return -sq / (2 * 0.01) - x[0].numel() * math.log(0.1 * math.sqrt(2 * math.pi))


def brightness(model, samples, reference):
    return {"samples": float(samples.mean()), "reference": float(reference.mean())}


def recon_l1(model, samples, reference):
    assert samples is None  # it does not need them
    return float((model.reconstruct(reference) - reference).abs().mean())


def crashes(model, samples, reference):
    raise RuntimeError("metric bug")
'''


@pytest.fixture
def metrics_plugin(tmp_path, monkeypatch):
    """A plugin registered in-process with a family that has a likelihood, and four metrics."""
    import importlib
    import textwrap

    from zoo.core.plugins import load_plugins, reset_plugins
    from zoo.core.registry import get_registry

    (tmp_path / "metrics_plugin.py").write_text(textwrap.dedent(METRICS_PLUGIN))
    (tmp_path / "metrics_impl.py").write_text(textwrap.dedent(METRICS_IMPL))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins().register(importlib.import_module("metrics_plugin"), name="metrics")
    get_registry.cache_clear()
    yield importlib.import_module("metrics_impl")
    reset_plugins()


def test_zoo_eval_runs_registered_metrics_and_any_declared_likelihood(metrics_plugin, tmp_path,
                                                                      cli):
    import zoo
    from zoo.core.spec import DataSpec
    from zoo.data import load_images

    folder = zoo.build("gauss-ae", overrides=[
        "data.source=digits", "data.image_size=8", "train.max_steps=2", "train.batch_size=16",
        "model.loss=mse", "sample.n=4"], out=tmp_path / "gauss")
    r = cli("eval", folder, "-n", "10", "--iwae-k", "2")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: metric 'crashes' (unknown) failed: RuntimeError: metric bug"]
    result = json.loads((folder / "metrics.json").read_text())["eval"]
    reference = load_images(DataSpec(source="digits", image_size=8), "test")[0]
    assert result["brightness.reference"] == pytest.approx(float(reference.mean()), abs=1e-6)
    model = zoo.from_pretrained(folder)
    assert result["brightness.samples"] == pytest.approx(
        float(model.sample(10, seed=0).mean()), abs=1e-6)
    assert 0 < result["recon-l1"] < 1
    assert not {"cifar-only", "crashes"} & {key.split(".")[0] for key in result}
    # the likelihood of a family whose decoder is not Bernoulli, on the held-out grey levels
    [given] = metrics_plugin.CALLS
    assert given.shape == reference.shape and given.equal(reference)
    assert isinstance(result["iwae_nll"], float) and result["iwae_k"] == 2
    assert result["iwae_data"] == (f"{len(reference)} held-out images (digits), grey levels "
                                   "in [0, 1]")
    card = (folder / "README.md").read_text()
    assert "| eval.brightness.samples |" in card and "type: recon-l1" in card
    assert "brightness.samples" in r.out  # the printed table


HOSTILE_PLUGIN = '''
from typing import Literal

from zoo import FamilyRecord, MetricRecord, hookimpl
from zoo_ae import VanillaSpec


class BadSpec(VanillaSpec):
    family: Literal["bad-ll"] = "bad-ll"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="bad-ll", summary="a likelihood that crashes", paper="none",
                          spec=BadSpec, impl="hostile_impl:BadLikelihood"))


@hookimpl
def register_metrics(register):
    for name in ("nan", "huge", "multiline", "fine"):
        register(MetricRecord(name, "hostile", f"hostile_impl:{name}"))
'''

HOSTILE_IMPL = '''
import torch
from zoo_ae.nets import AETrainer, mlp_autoencoder

from zoo import Family


class BadLikelihood(Family):
    trainer_class = AETrainer

    def build(self, spec):
        return mlp_autoencoder(spec)

    def sample(self, model, noise, spec, options):
        codes = model.code_mean + noise.randn(model.code_dim) @ model.code_tril.T
        return torch.sigmoid(model.decoder(codes))

    def log_likelihood(self, model, x, k, spec, generator):
        raise RuntimeError("likelihood bug\\nsecond line")


def nan(model, samples, reference):
    return {"ok": 1.0, "bad": float("nan")}


def huge(model, samples, reference):
    return {f"k{i}": 0.5 for i in range(100_000)}


def multiline(model, samples, reference):
    raise ValueError("first\\nsecond")


def fine(model, samples, reference):
    return 0.25
'''


def test_zoo_eval_survives_hostile_metrics_and_a_crashing_likelihood(tmp_path, cli,
                                                                    monkeypatch):
    """NaN, 100,000 values, a multi-line exception: one warning line each, nothing stored
    for them, metrics.json stays valid JSON; a log_likelihood that raises is a note."""
    import importlib
    import textwrap

    import zoo
    from zoo.core.plugins import load_plugins, reset_plugins
    from zoo.core.registry import get_registry

    (tmp_path / "hostile_plugin.py").write_text(textwrap.dedent(HOSTILE_PLUGIN))
    (tmp_path / "hostile_impl.py").write_text(textwrap.dedent(HOSTILE_IMPL))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins().register(importlib.import_module("hostile_plugin"), name="hostile")
    get_registry.cache_clear()
    try:
        folder = zoo.build("bad-ll", overrides=[
            "data.source=digits", "data.image_size=8", "train.max_steps=2",
            "train.batch_size=16", "model.loss=mse", "sample.n=4"], out=tmp_path / "bad")
        r = cli("eval", folder, "-n", "10", "--iwae-k", "2")
    finally:
        reset_plugins()
    assert r.code == 0, r.err
    lines = [line for line in r.err.strip().splitlines() if line.startswith("warning: ")]
    assert len(lines) == 4, r.err
    assert "log_likelihood of family 'bad-ll'" in lines[0] and "likelihood bug second line" \
        in lines[0]
    assert "'huge'" in lines[1] and "100,000 values" in lines[1]
    assert "'multiline'" in lines[2] and "ValueError: first second" in lines[2]
    assert "'nan'" in lines[3] and "nan for 'bad'" in lines[3]
    text = (folder / "metrics.json").read_text()
    assert "NaN" not in text
    result = json.loads(text)["eval"]
    assert result["fine"] == 0.25 and result["iwae_nll"] is None
    assert result["iwae_note"].startswith("failed: RuntimeError: likelihood bug")
    assert not [key for key in result if key.split(".")[0] in ("nan", "huge", "multiline")]


def _bad_loader(kind):
    import numpy as np
    import torch

    from zoo.data import ImageData

    def load(spec, split):
        good = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
        return {"numpy": np.zeros((8, 1, 8, 8), np.uint8),
                "float": ImageData(good.float(), None),
                "hwc": ImageData(torch.zeros(8, 8, 8, 3, dtype=torch.uint8), None),
                "empty": ImageData(good[:0], None),
                "labels": ImageData(good, torch.zeros(3, dtype=torch.int64))}[kind]
    return load


@pytest.mark.parametrize("kind,fragment", [
    ("numpy", "returned ndarray without an images tensor"),
    ("float", "images of dtype torch.float32"),
    ("hwc", "shape [8, 8, 8, 3]"),
    ("empty", "no images"),
    ("labels", "labels of shape [3] and dtype torch.int64 for 8 images"),
])
def test_a_data_source_returning_the_wrong_thing_is_one_line(kind, fragment, cli, monkeypatch,
                                                             tmp_path):
    """A plugin's loader that returns a NumPy array, float or HxWxC images, none, or labels
    that do not match: one line naming the source, not a traceback deep in training."""
    monkeypatch.setattr("zoo.core.registry.dataset_loader", lambda source: _bad_loader(kind))
    r = cli("build", "ae", "--set", "train.max_steps=1", "--out", tmp_path / "out")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert r.err.startswith("error: data source 'mnist5k' (train split) returned ") and \
        fragment in r.err, r.err


def test_zoo_eval_notes_a_likelihood_the_family_cannot_define(tmp_path, cli):
    import zoo

    folder = zoo.build("vae", overrides=[
        "data.source=digits", "data.image_size=8", "train.max_steps=2", "train.batch_size=16",
        "data.binarize=none", "sample.n=4"], out=tmp_path / "vae-grey")
    r = cli("eval", folder, "-n", "10", "--iwae-k", "2")
    assert r.code == 0, r.err
    result = json.loads((folder / "metrics.json").read_text())["eval"]
    assert result["iwae_nll"] is None
    assert result["iwae_note"] == ("skipped: the Bernoulli likelihood is defined for binary "
                                   "images only: set data.binarize (static, dynamic or "
                                   "threshold)")


def test_training_the_digit_classifier_says_so_with_progress(tmp_path, monkeypatch, capsys):
    """The first zoo eval trains the classifier: one line saying so, then progress lines."""
    import zoo.evaluation.features as features

    few = {split: [t[:128] for t in features._mnist(split)] for split in ("train", "test")}
    monkeypatch.setattr(features, "_mnist", few.get)
    monkeypatch.setattr(features, "EPOCHS", 1)  # 2 steps of 64
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    capsys.readouterr()
    features.load_classifier()
    lines = capsys.readouterr().err.splitlines()
    cached = tmp_path / "cache" / "digit-classifier-v1.safetensors"
    assert lines[0] == (f"training the digit classifier once (2 steps, about 0 s on 2 CPU "
                        f"cores), cached in {cached}")
    assert lines[1].startswith("step 2/2  loss ") and lines[1].endswith(" img/s")
    assert lines[2].startswith("trained digit classifier: held-out accuracy ")
    assert len(lines) == 3 and cached.is_file()
