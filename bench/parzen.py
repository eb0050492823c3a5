"""The GAN paper's yardstick on the zoo's digit models: Parzen-window log-likelihood of one
held-out split, beside the VAE's importance-sampled likelihood.

Goodfellow et al. (2014, Table 1) fit a Gaussian Parzen window to 10,000 samples of each
model, chose σ on the validation set and reported the mean log-likelihood of the MNIST
test set (GAN: 225 ± 2). This script does the same for trained model folders of
``gan-mnist``, ``dcgan-mnist`` and ``vae-mnist`` (``--run NAME=FOLDER``, repeatable):

* samples: ``model.sample(--samples, seed=--seed)``; DCGAN's 32×32 samples are resized to
  28×28 (area averaging), so every model is scored in the same 784-d pixel space;
* held-out images: the ``mnist5k`` test split at 28×28, grey levels in [0, 1] (the paper's
  real-valued MNIST), even positions for choosing σ, odd ones for the estimate
  (:func:`zoo.evaluation.parzen.parzen_estimate`, the same as ``zoo eval``'s ``parzen``);
* ``training images``: the 4,500 training digits themselves as the "samples": what a
  model that memorised its data would score;
* the VAE's IWAE NLL (k = 1000) on the same split, statically binarised as it was
  trained: a bound on a discrete probability, not a density, so the two columns are not
  comparable in absolute terms (Theis et al., 2016).

One summary line per model; JSON to ``bench/results/parzen.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.core.spec import DataSpec
from zoo.evaluation.parzen import parzen_estimate
from zoo.evaluation.real import held_out_images, train_sample

RESULTS = Path(__file__).parent / "results"
GREY = DataSpec(source="mnist5k", image_size=28)


def to_28(images: torch.Tensor) -> torch.Tensor:
    """Images at 28×28 (area averaging from a larger size)."""
    if images.shape[-1] == 28:
        return images
    return F.interpolate(images, size=(28, 28), mode="area").clamp(0, 1)


def score(samples: torch.Tensor, held_out: torch.Tensor) -> dict[str, float]:
    """:func:`parzen_estimate` with the held-out images split even / odd."""
    return parzen_estimate(samples, held_out[0::2], held_out[1::2])


def main() -> None:
    """Score every ``--run``; print one line each; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER",
                        help="a trained model folder (repeatable)")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "parzen.json")
    args = parser.parse_args()

    held_out = held_out_images(GREY)
    rows = {}
    real = train_sample(GREY)
    rows["training images"] = {**score(real, held_out), "what": "the training digits"}
    for spec in args.run:
        name, _, folder = spec.partition("=")
        model = zoo.from_pretrained(folder)
        start = time.perf_counter()
        samples = to_28(model.sample(args.samples, seed=args.seed))
        row = {**score(samples, held_out), "sample_s": round(time.perf_counter() - start, 1),
               "family": model.family.name, "sample_size": model.spec.data.image_size}
        if "log_likelihood" in model.family.capabilities:
            from zoo.evaluation.evaluate import likelihood_metrics

            row.update(likelihood_metrics(model, args.iwae_k))
        rows[name] = row
    for name, row in rows.items():
        iwae = f"   IWAE NLL {row['iwae_nll']:.1f} nats (k={row['iwae_k']}, binarised)" \
            if row.get("iwae_nll") is not None else ""
        print(f"parzen {name}: {row['ll']:.1f} ± {row['se']:.1f} nats (sigma {row['sigma']:.3f}, "
              f"{row['samples']:,} samples, {row['test_images']} test digits){iwae}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"samples": args.samples, "seed": args.seed,
                                    "held_out": len(held_out), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
