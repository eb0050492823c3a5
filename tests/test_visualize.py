"""zoo visualize: latent interpolation, first-layer filters, activation maximisation and
Zeiler–Fergus projections, checked against hand computations and the acceptance criteria."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PIL import Image
from torch import nn

import zoo
from zoo.api import ZooModel, resolve_spec
from zoo.core.errors import CapabilityError
from zoo.sampling.sample import PerSampleNoise, sample_images
from zoo.visualize import visualize
from zoo.visualize.interpolate import decode, lerp, path, slerp, strips

#: Untrained tiny modules of every family with latent codes (cheap to build).
LATENT_FAMILIES = {
    "dcgan": ["data.image_size=16", "model.base_channels=8", "model.disc_channels=8",
              "model.latent_dim=16"],
    "vae": ["data.image_size=16", "model.hidden=[32]", "model.code_dim=4"],
    "aae": ["data.image_size=16", "model.hidden=[32]", "model.code_dim=4",
            "model.prior=mixture10"],
    "lapgan": ["data.image_size=16", "model.levels=2", "model.hidden=32", "model.channels=8",
               "model.num_classes=10"],
    "ddpm": ["data.image_size=8", "model.channels=8", "model.channel_mult=[1,2]",
             "model.attention_levels=[]", "model.timesteps=10", "sample.steps=3"],
    "gan": ["data.image_size=8", "model.latent_dim=4", "model.g_hidden=[16,16]"],
    "draw": ["data.image_size=12", "model.steps=3", "model.enc_hidden=8", "model.dec_hidden=8",
             "model.z_size=4"],
    "upconv": ["data.image_size=8", "model.identities_per_class=2", "model.stream_width=8",
               "model.joint_width=16", "model.channels=8"],
}


def untrained(family: str, tmp_path=None) -> ZooModel:
    record, spec = resolve_spec(family, None, LATENT_FAMILIES[family])
    torch.manual_seed(0)
    return ZooModel(record, spec, record.load().build(spec).eval(), tmp_path)


@pytest.fixture(scope="module")
def dcgan(micro_dcgan, tmp_path_factory):
    """A private copy of the micro DCGAN folder (visualize writes into it)."""
    return shutil.copytree(micro_dcgan, tmp_path_factory.mktemp("vis") / "dcgan")


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    """A VAE trained for 20 steps on 256 digits at 16x16."""
    return zoo.build("vae", None, ["train.max_steps=20", "data.limit=256", "data.image_size=16",
                                   "model.hidden=[64]", "model.code_dim=4", "sample.n=4",
                                   "train.precision=fp32"],
                     tmp_path_factory.mktemp("vis") / "vae")


# --------------------------------------------------------------------------- the capability


@pytest.mark.parametrize("family", sorted(LATENT_FAMILIES))
def test_generate_of_latent_is_the_sampler(family):
    model = untrained(family)
    impl, options = model.family.load(), model.family.sampling_options()
    noise = PerSampleNoise(7, range(4))
    with torch.inference_mode():
        codes = impl.latent(model.module, noise, model.spec)
        assert torch.equal(impl.generate(model.module, codes, model.spec, options),
                           impl.sample(model.module, noise, model.spec, options))


def test_families_without_latent_codes_say_so():
    from zoo.core.registry import get_family

    with pytest.raises(CapabilityError, match="does not support 'latent'"):
        get_family("conv-ae").require("latent")


# --------------------------------------------------------------------------- interpolation


def test_slerp_and_lerp_by_hand():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)  # on the circle of radius 3, at 45 degrees
    assert torch.allclose(mid, torch.tensor([3 / math.sqrt(2)] * 2))
    assert torch.allclose(lerp(a, b, 0.5), torch.tensor([1.5, 1.5]))
    third = slerp(a, b, 1 / 3)
    assert math.degrees(math.atan2(third[1], third[0])) == pytest.approx(30.0)
    assert torch.allclose(slerp(a, 2 * a, 0.5), lerp(a, 2 * a, 0.5))  # parallel: lerp
    walk = path(torch.randn(5, 1, 1), torch.randn(5, 1, 1), 6)
    assert walk.shape == (6, 5, 1, 1)


@pytest.mark.parametrize("family", ["aae", "lapgan", "ddpm", "gan", "draw", "upconv"])
def test_strips_of_other_families_start_and_end_at_their_samples(family):
    model = untrained(family)
    images, _ = strips(model, pairs=2, frames=4)
    samples = sample_images(model.family, model.module, model.spec, 4, seed=0)
    # sampling ran one chunk of 4, the strips a padded chunk: equal to float rounding
    torch.testing.assert_close(images[:, 0], samples[0::2], atol=1e-5, rtol=0)
    torch.testing.assert_close(images[:, -1], samples[1::2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["dcgan", "vae"])
@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolation_endpoints_are_the_decoded_endpoint_codes(name, method, request):
    """Acceptance 4, on trained models: bitwise the decoded end codes, and the samples of the
    seed to float rounding."""
    model = zoo.from_pretrained(request.getfixturevalue(name))
    images, codes = strips(model, pairs=3, frames=5, method=method, seed=2)
    ends = decode(model, codes)
    assert images.shape[:2] == (3, 5)
    assert torch.equal(images[:, 0], ends[0::2]) and torch.equal(images[:, -1], ends[1::2])
    samples = model.sample(6, seed=2)  # one unpadded chunk of 6: equal to float rounding
    torch.testing.assert_close(images[:, 0], samples[0::2], atol=1e-5, rtol=0)
    torch.testing.assert_close(images[:, -1], samples[1::2], atol=1e-5, rtol=0)
    assert not torch.equal(images[:, 1], images[:, 0])  # the path moves


def test_zoo_visualize_interpolate_writes_a_png_listed_and_linked(dcgan, cli):
    r = cli("visualize", "interpolate", dcgan, "--pairs", "3", "--frames", "5")
    assert r.code == 0, r.err
    png = dcgan / "visualize" / "interpolate-slerp.png"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:  # 5 tiles of 64 px (16 px x 4) per row, 3 rows, 2 px gaps
        assert image.size == (2 + 5 * 66, 2 + 3 * 66)
    assert "visualize/interpolate-slerp.png" in (dcgan / "README.md").read_text()
    info = json.loads(cli("info", dcgan, "--json").out)
    assert "visualize/interpolate-slerp.png" in [v["path"] for v in info["visualizations"]]
    index = json.loads((dcgan / "visualize" / "index.json").read_text())
    assert index["interpolate-slerp.png"]["options"]["pairs"] == 3


def test_interpolate_passes_the_familys_sampling_options(dcgan, tmp_path, cli):
    """--opt reaches the family's generate (DDIM steps of a diffusion model); an option the
    family does not have is one line naming its options, before anything is written."""
    ddpm = zoo.build("ddpm", None, [*LATENT_FAMILIES["ddpm"], "train.max_steps=1",
                                    "data.limit=16", "train.batch_size=8", "sample.n=2"],
                     tmp_path / "ddpm")
    r = cli("visualize", "interpolate", ddpm, "--pairs", "1", "--frames", "3", "--opt",
            "steps=2", "-o", tmp_path / "vis")
    assert r.code == 0, r.err
    index = json.loads((tmp_path / "vis" / "index.json").read_text())
    assert index["interpolate-slerp.png"]["options"]["steps"] == 2
    for model, option, needle in [(ddpm, "bogus=1", "(its options: sampler, steps, eta)"),
                                  (dcgan, "steps=2", "no sampling option 'steps'")]:
        r = cli("visualize", "interpolate", model, "--opt", option, "-o", tmp_path / "no")
        assert r.code == 2 and r.err.count("\n") == 1 and needle in r.err, r.err
        assert not (tmp_path / "no").exists()


def test_interpolate_on_a_family_without_latent_codes_is_one_line(tmp_path, cli):
    ae = zoo.build("ae", None, ["train.max_steps=2", "data.limit=64", "data.image_size=8",
                                "sample.n=4"], tmp_path / "ae")
    r = cli("visualize", "interpolate", ae)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "family 'ae' does not support 'latent'" in r.err
    assert not (ae / "visualize").exists()


# --------------------------------------------------------------------------- filters


def test_filters_of_the_discriminator_and_of_an_encoder(dcgan, vae, tmp_path):
    from zoo.visualize.filters import filter_tiles, first_layer
    from zoo.visualize.targets import resolve_target

    target = resolve_target(zoo.from_pretrained(dcgan))
    assert target.name == "discriminator" and (target.low, target.high) == (-1.0, 1.0)
    name, weights = first_layer(target.module, target.shape)
    assert name == "net.0" and torch.equal(weights, target.module.net[0].weight)
    tiles, per = filter_tiles(weights)
    assert per == 1 and tiles.shape == weights.shape
    assert torch.allclose(tiles.flatten(1).amin(1), torch.zeros(8))
    assert torch.allclose(tiles.flatten(1).amax(1), torch.ones(8))

    encoder = resolve_target(zoo.from_pretrained(vae))
    assert encoder.name == "encoder"
    name, weights = first_layer(encoder.module, encoder.shape)
    assert weights.shape == (64, 1, 16, 16)  # the rows of Linear(256, 64) as 16x16 images
    paths = visualize(vae, "filters", tmp_path / "out", count=10)
    assert [p.name for p in paths] == ["filters-encoder.png"]
    assert not (vae / "visualize").exists()  # -o elsewhere: the folder is left alone


def test_the_first_layer_is_the_one_that_reads_the_image():
    from zoo.visualize.filters import first_layer

    shape = (1, 16, 16)
    unet_like = nn.Sequential(nn.Linear(8, 8), nn.Conv2d(4, 4, 3), nn.Conv2d(1, 6, 3))
    assert first_layer(unet_like, shape)[0] == "2"  # the conv over the image's channels
    conditional = nn.Sequential(nn.Conv2d(3, 5, 3), nn.Conv2d(5, 5, 3))
    name, weights = first_layer(conditional, shape)  # image + condition planes
    assert name == "0" and weights.shape == (5, 3, 3, 3)
    code_mlp = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 1))
    with pytest.raises(CapabilityError, match="no convolution, nor a first linear layer"):
        first_layer(code_mlp, shape)  # its second layer happens to take 256 = 16 x 16 inputs


# --------------------------------------------------------------------------- activation max


def test_activation_max_of_digit_units_is_classified_as_that_digit(dcgan):
    """Acceptance 3: the classifier assigns each image to its digit with p > 0.9."""
    from zoo.evaluation.features import load_classifier
    from zoo.visualize.actmax import Settings, maximise
    from zoo.visualize.targets import resolve_target

    target = resolve_target(zoo.from_pretrained(dcgan), "classifier")
    digits = [2, 5, 9]
    images, layer, units = maximise(target, "head.1", digits, Settings(iterations=96))
    assert layer == "head.1" and units == digits and images.shape == (3, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    net, _ = load_classifier()
    with torch.no_grad():
        probs = net(images)[1].softmax(1)
    print("activation-max p(digit):", {d: round(float(probs[i, d]), 6)
                                       for i, d in enumerate(digits)})
    assert all(probs[i, d] > 0.9 for i, d in enumerate(digits))


def test_activation_max_raises_the_unit_over_its_start(dcgan):
    from zoo.visualize.actmax import Settings, maximise, responses
    from zoo.visualize.targets import resolve_target

    target = resolve_target(zoo.from_pretrained(dcgan))
    start = (0.1 + 0.05 * torch.randn(2, 1, 16, 16,  # what maximise starts from at seed 0
                                      generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    plain = Settings(iterations=24, jitter=0, blur=0, decay=0)
    images, layer, units = maximise(target, "net.2", [0, 3], plain)
    assert layer == "net.2"
    before, after = responses(target, layer, units, start), responses(target, layer, units, images)
    assert (after > before + 0.01).all(), (before, after)
    logit, _, _ = maximise(target, None, None, Settings(iterations=24))  # D's output, defaults
    assert responses(target, "net.5", [0], logit) > responses(target, "net.5", [0], start[:1])


def test_looking_inside_a_loaded_model_leaves_its_weights_alone(vae, tmp_path):
    model = zoo.from_pretrained(vae)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    visualize(model, "activation-max", tmp_path, iterations=3)
    visualize(model, "deconv", tmp_path, top_k=2, limit=20)
    assert all(p.grad is None and p.requires_grad for p in model.module.parameters())
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_zoo_visualize_activation_max_and_its_one_line_errors(dcgan, cli):
    r = cli("visualize", "activation-max", dcgan, "--layer", "net.2", "--unit", "1",
            "--unit", "2", "--iterations", "8")
    assert r.code == 0, r.err
    assert (dcgan / "visualize" / "actmax-discriminator-net.2-1-2.png").is_file()
    for args, message in [
        (["--module", "discrimnator"], "no module 'discrimnator' (did you mean 'discriminator'?)"),
        (["--layer", "net.22"], "no layer 'net.22'"),
        (["--layer", "net.5", "--unit", "4"], "layer 'net.5' has 1 unit (0..0); no unit 4"),
        (["--module", "model"], "module 'model' of the dcgan model does not take 1×16×16"),
        (["--pairs", "2"], "No such option: --pairs"),  # interpolate's, not this command's
    ]:
        r = cli("visualize", "activation-max", dcgan, "--iterations", "2", *args)
        assert r.code == 2 and r.err.count("\n") == 1 and message in r.err, (args, r.err)
    r = cli("visualize", "activation", dcgan)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "No such command 'activation'. Did you mean 'activation-max'?" in r.err


@pytest.mark.parametrize(("command", "foreign"), [
    ("interpolate", ["--layer", "net.2"]), ("filters", ["--unit", "1"]),
    ("activation-max", ["--top-k", "2"]), ("deconv", ["--iterations", "2"]),
])
def test_each_visualize_command_takes_only_its_own_options(cli, tmp_path, command, foreign):
    """zoo visualize is a group: an option of another mode is a usage error, one line,
    exit 2, before any model is loaded."""
    r = cli("visualize", command, tmp_path / "no-model", *foreign)
    lines = [line for line in r.err.splitlines() if not line.startswith("warning: ")]
    assert r.code == 2 and len(lines) == 1, r.err
    assert lines[0].startswith("error: ")
    assert f"zoo visualize {command}: No such option: {foreign[0]}" in lines[0]


def test_the_python_api_refuses_an_option_of_another_mode(dcgan):
    from zoo.visualize import visualize

    with pytest.raises(zoo.ZooError, match="--pairs does not apply to filters"):
        visualize(dcgan, "filters", pairs=2)
    with pytest.raises(zoo.ZooError, match="no visualisation 'activation'"):
        visualize(dcgan, "activation")


# --------------------------------------------------------------------------- deconv


def test_rectifier_backward_rules_by_hand():
    from zoo.visualize.deconv import Rectifier

    x = torch.tensor([-1.0, -1.0, 2.0, 2.0], requires_grad=True)
    grad = torch.tensor([1.0, -1.0, 1.0, -1.0])
    expected = {"guided": [0.0, 0.0, 1.0, 0.0], "deconvnet": [1.0, 0.0, 1.0, 0.0],
                "pass": [1.0, -1.0, 1.0, -1.0]}
    for rule, want in expected.items():
        x.grad = None
        out = Rectifier(0.0, rule)(x)
        assert torch.equal(out.detach(), torch.tensor([0.0, 0.0, 2.0, 2.0]))
        out.backward(grad)
        assert x.grad.tolist() == want, rule
    x.grad = None
    Rectifier(0.2, "guided")(x).backward(grad)  # leaky: the slope where x < 0
    assert torch.allclose(x.grad, torch.tensor([0.2, 0.0, 1.0, 0.0]))


def test_projection_through_one_convolution_is_its_filter_at_the_receptive_field():
    from zoo.visualize.deconv import project, receptive_boxes, top_inputs
    from zoo.visualize.targets import Target

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.ReLU(inplace=True)).eval()
    target = Target("toy", net, (1, 8, 8))
    images = torch.zeros(3, 1, 8, 8)
    images[1, 0, 4:7, 2:5] = net[0].weight[1, 0].clamp_min(0).detach()  # matches filter 1
    hits = top_inputs(target, "0", 1, images, top_k=1)
    assert hits.index.tolist() == [1] and hits.where == [(4, 2)]
    projection = project(target, "0", 1, images[hits.index], hits.where, "deconvnet")
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 4:7, 2:5] = net[0].weight[1, 0]
    assert torch.allclose(projection, expected)
    assert receptive_boxes(target, "0", 1, images[hits.index], hits.where) == [(4, 2, 6, 4)]
    assert isinstance(net[1], nn.ReLU)  # the model itself is left as it was


def test_zoo_visualize_deconv_and_filters_on_a_trained_dcgan(dcgan, cli):
    r = cli("visualize", "deconv", dcgan, "--unit", "0", "--unit", "5", "--top-k", "4",
            "--limit", "200")
    assert r.code == 0, r.err
    for unit in (0, 5):
        png = dcgan / "visualize" / f"deconv-discriminator-net.2-{unit}.png"
        with Image.open(png) as image:  # rows: input, patch, projection; 64 px tiles
            assert image.size == (2 + 3 * 66, 2 + 4 * 66) and image.mode == "RGB"
    index = json.loads((dcgan / "visualize" / "index.json").read_text())
    responses = index["deconv-discriminator-net.2-0.png"]["options"]["responses"]
    assert responses == sorted(responses, reverse=True) and len(responses) == 4
    assert cli("visualize", "filters", dcgan).code == 0
    card = (dcgan / "README.md").read_text()
    assert "## Inside the model" in card
    for name in ("deconv-discriminator-net.2-5.png", "filters-discriminator.png"):
        assert f"(visualize/{name})" in card
    r = cli("visualize", "deconv", dcgan, "--rule", "backprop")
    assert r.code == 2 and "--rule 'backprop'" in r.err


def test_deconv_on_the_classifier_ranks_real_inputs(dcgan):
    from zoo.visualize.deconv import load_data, top_inputs
    from zoo.visualize.targets import layer_output, resolve_target

    model = zoo.from_pretrained(dcgan)
    target = resolve_target(model, "classifier")
    images = load_data(model, target, "digits", 100)  # another source, resized to 28x28
    assert images.shape == (100, 1, 28, 28)
    hits = top_inputs(target, "head.1", 3, images, top_k=5)
    with torch.no_grad():
        logits = layer_output(target.module, target.module.head[1], images)[:, 3]
    assert hits.index.tolist() == logits.topk(5).indices.tolist()
    assert all(where == (0, 0) for where in hits.where)  # a linear unit


def test_a_hub_model_needs_an_output_folder(cli):
    r = cli("visualize", "filters", "me/not-here")
    assert r.code == 2 and "no such model folder; for a Hub model give -o DIR" in r.err


# --------------------------------------------------------------------------- steps


def test_steps_of_a_lapgan_are_its_pyramid_scaled_to_the_final_size(tmp_path):
    """Each row of steps.png is one sample's pyramid, coarse to fine, each level scaled
    (nearest) to the final size; the last column is the sample itself."""
    from zoo.visualize.steps import render, stages

    model = untrained("lapgan", tmp_path)
    images, levels = stages(model, 3, seed=5, label=2)
    assert [tuple(level.shape) for level in levels] == [(3, 1, 8, 8), (3, 1, 16, 16)]
    assert torch.equal(levels[-1], images)
    assert torch.equal(images, sample_images(model.family, model.module, model.spec, 3, 5,
                                             label=2))
    [picture] = render(model, count=3, seed=5, sampling={"label": 2})
    assert picture.name == "steps.png" and picture.options["stages"] == 2
    assert "pyramid level" in picture.caption and "label 2" in picture.caption
    written = visualize(model, "steps", tmp_path / "out", count=3, seed=5)
    assert Image.open(written[0]).size[0] > 2 * 16


def test_steps_of_a_family_without_stages_is_one_line(dcgan, cli):
    r = cli("visualize", "steps", dcgan)
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "does not build its samples in stages" in r.err
    r = cli("visualize", "steps", dcgan, "--count", "0")
    assert r.code == 2 and r.err.count("\n") == 1, r.err


def test_steps_of_draw_are_its_canvases_ending_at_the_sample(tmp_path):
    """DRAW's stages: sigmoid of the canvas after each of the T steps; the last is the
    sample, and the rows are samples 0 .. n-1 of the seed."""
    from zoo.visualize.steps import render, stages

    model = untrained("draw", tmp_path)
    images, canvases = stages(model, 4, seed=3)
    assert len(canvases) == 3 and all(c.shape == images.shape for c in canvases)
    assert torch.equal(canvases[-1], images)
    assert torch.equal(images, sample_images(model.family, model.module, model.spec, 4, 3))
    [picture] = render(model, count=4, seed=3)
    assert "canvas after each step" in picture.caption and picture.options["stages"] == 3
