"""Run every bench script and write one report: ``bench/results/*.json`` and ``docs/benchmarks.md``.

Each script runs in its own process (so one's threads, caches and accelerate
state never touch another's), one after the other, with ``--quick`` passed
through. Then the summary table (every figure as a ratio to its peer, with its
target) and the plots are written:

* ``docs/img/throughput_vs_batch.png``: DCGAN training images/s against batch
  size, ours and the PyTorch examples DCGAN (CPU runs of this report, and the
  GPU figures in ``bench/results/gpu/`` when present);
* ``docs/img/dedup_scaling.png``: ``zoo dedup`` per-image time against N;
* ``docs/img/quality_vs_time.png``: Fréchet distance against training time for
  the recorded DCGAN, LAPGAN and DDPM builds (``bench/quality.json``; those
  builds take minutes each and are not rerun here).

The report replaces the part of ``docs/benchmarks.md`` between the
``<!-- run_all -->`` markers; the hand-written sections around it stay.

Usage::

    python bench/run_all.py --quick     # smoke-test settings, about 10 minutes on 2 cores
    python bench/run_all.py             # full settings (an hour or more on 2 cores)
    python bench/run_all.py --only dcgan_train cold_start
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs"
REPORT = DOCS / "benchmarks.md"
IMG = DOCS / "img"
BEGIN, END = "<!-- run_all -->", "<!-- /run_all -->"

#: name -> extra arguments; every script also gets --quick when asked for.
SCRIPTS: dict[str, list[list[str]]] = {
    "dcgan_train": [[], ["--batch", "16"]],
    "ddpm_vs_diffusers": [[]],
    "vae_vs_pythae": [[]],
    "load": [[]],
    "dedup": [[]],
    "cold_start": [[]],
    "features": [[]],
    "sample_latency": [[]],
}


def result_path(name: str, extra: list[str], quick: bool) -> Path:
    """Where a script writes its JSON for these arguments (its own naming rule)."""
    batch = extra[extra.index("--batch") + 1] if "--batch" in extra else None
    stem = name + (f".b{batch}" if batch else "")
    return RESULTS / f"{stem}{'.quick' if quick else ''}.json"


def run_scripts(names: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """Run each script (each configuration) in turn; return name -> status and seconds."""
    status: dict[str, dict[str, Any]] = {}
    for name in names:
        script = HERE / f"{name}.py"
        for extra in SCRIPTS[name]:
            label = " ".join([name, *extra])
            if not script.exists():
                status[label] = {"ok": False, "why": f"{script.name} is not in this checkout"}
                print(f"run_all: skip {label}: not in this checkout", flush=True)
                continue
            cmd = [sys.executable, str(script), *extra, *(["--quick"] if quick else [])]
            print(f"run_all: {' '.join(cmd[1:])}", flush=True)
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=HERE.parent)
            status[label] = {"ok": done.returncode == 0, "seconds": round(
                time.perf_counter() - start, 1), "returncode": done.returncode}
    return status


def load(name: str, quick: bool, extra: list[str] | None = None) -> dict[str, Any] | None:
    """A script's results for this report's mode, else its other mode's, else None."""
    for q in (quick, not quick):
        path = result_path(name, extra or [], q)
        if path.exists():
            data = json.loads(path.read_text())
            data["_file"] = str(path.relative_to(HERE.parent))
            return data
    return None


# --------------------------------------------------------------------------- the table


Row = tuple[str, str, str, str, str]  # figure, ours, peer, ratio, target
Extractor = Callable[[dict[str, Any]], list[Row]]


def _of_peak(rows: dict[str, Any], name: str) -> str:
    """`` (NN % of peak)`` for a configuration of a bench's ``vs_peak``, if it has one."""
    row = rows.get(name)
    return f" ({row['fraction_of_peak']:.0%} of {row['precision']} peak)" if row else ""


def _dcgan(d: dict[str, Any]) -> list[Row]:
    ips, ratio, pk = d["images_per_s"], d["ratio_vs_peer"], d.get("vs_peak", {})
    peer = f"{ips['peer fp32']:.1f} img/s{_of_peak(pk, 'peer fp32')}"
    default = next(k for k in ips if k.startswith("ours default("))  # "(bf16+fused+NHWC)"
    return [("DCGAN step fp32", f"{ips['ours fp32']:.1f} img/s{_of_peak(pk, 'ours fp32')}",
             peer, f"{ratio['ours fp32']:.2f}×", "≥ 1×"),
            (f"DCGAN step, default settings {default[len('ours default'):]}",
             f"{ips[default]:.1f} img/s{_of_peak(pk, default)}", peer,
             f"{ratio[default]:.2f}×", "≥ 2×")]


def _ddpm(d: dict[str, Any]) -> list[Row]:
    ips, rows, pk = d["train"]["images_per_s"], [], d["train"].get("vs_peak", {})
    for precision in ("fp32", "bf16"):
        ours, peer = f"ours {precision}", f"peer tuned {precision}"
        rows.append((f"DDPM step {precision} (peer tuned)",
                     f"{ips[ours]:.1f} img/s{_of_peak(pk, ours)}",
                     f"{ips[peer]:.1f} img/s{_of_peak(pk, peer)}",
                     f"{d['train']['ratio'][f'{precision} tuned']:.2f}×", "≥ 1.2×"))
    s = d["sample"]["images_per_s"]
    for precision in ("fp32", "bf16"):
        if f"ours ddim50 {precision}" in s:  # results from before bf16 sampling: fp32 only
            rows.append((f"DDIM-50 sampling {precision}", f"{s[f'ours ddim50 {precision}']:.2f} "
                         "img/s", f"{s[f'peer ddim50 {precision}']:.2f} img/s",
                         f"{d['sample']['ratio'][f'ddim50 {precision}']:.2f}×", "≥ 1.2×"))
    return rows


def _vae(d: dict[str, Any]) -> list[Row]:
    m, pk = d["median"], d.get("vs_peak", {})
    return [("VAE training loop time (held-out NLL, nats)", f"{m['ours']['loop_s']:.1f} s "
             f"(NLL {m['ours']['nll_nats']:.1f}){_of_peak(pk, 'ours')}",
             f"{m['pythae']['loop_s']:.1f} s "
             f"(NLL {m['pythae']['nll_nats']:.1f}){_of_peak(pk, 'pythae')}",
             f"{d['time_ratio_ours_over_pythae']['loop']:.2f}×", "≤ 1× at equal NLL")]


def _load(d: dict[str, Any]) -> list[Row]:
    ms, r = d["median_ms"], d["ratios"]
    return [("local load, same UNet (like for like)", f"{ms['ours_ddpm']:.1f} ms",
             f"{ms['diffusers_same_unet']:.1f} ms",
             f"{r['ours_ddpm/diffusers_same_unet']:.2f}×", "≤ 1×"),
            ("local load, 5.3 M params, different models (25 vs 270 tensors)",
             f"{ms['ours']:.1f} ms", f"{ms['diffusers']:.1f} ms",
             f"{r['ours/diffusers']:.2f}×", "–")]


def _dedup(d: dict[str, Any]) -> list[Row]:
    acc = d["accuracy"]
    ours = next(v for k, v in acc.items() if k.startswith("zoo dedup (defaults"))
    # imagededup's own answer: each file's list of duplicates (its "raw lists")
    phash = next(v for k, v in acc.items() if k.startswith("imagededup PHash") and "raw" in k)
    ips = d["throughput_images_per_s"]
    peer_ips = next(v for k, v in ips.items() if k.startswith("imagededup PHash (default"))
    return [("dedup recall (precision)", f"{ours['recall']:.3f} ({ours['precision']:.3f})",
             f"{phash['recall']:.3f} ({phash['precision']:.3f}) PHash",
             f"{ours['recall'] / max(phash['recall'], 1e-9):.2f}×", "> 1× at precision ≥ 0.99"),
            ("dedup throughput, files to groups", f"{ips['zoo dedup']:.0f} img/s",
             f"{peer_ips:.0f} img/s PHash", f"{ips['zoo dedup'] / peer_ips:.1f}×", "–"),
            ("dedup cost per image, 100k / 10k", f"{d['per_image_cost_100k_over_10k']:.2f}×"
             if d.get("per_image_cost_100k_over_10k") else "not run (quick)", "–", "–",
             "≤ 1.5×")]


def _cold(d: dict[str, Any]) -> list[Row]:
    ms, r = d["median_ms"], d["ratios"]
    return [(f"cold start {name}", f"{ms[name]:.0f} ms", f"{ms['import torch']:.0f} ms "
             "(import torch)", f"{r[name]['vs_import_torch']:.2f}×",
             "≤ 0.3×" if name == "zoo list" else "–") for name in ("zoo --help", "zoo list")]


def _features(d: dict[str, Any]) -> list[Row]:
    ips = d["images_per_s"]
    ours, peer = ips["inception (ours)"], ips["inception (torch-fidelity)"]
    return [("Inception features (zoo eval), batch 50", f"{ours:.1f} img/s",
             f"{peer:.1f} img/s", f"{ours / peer:.2f}×", "≥ 1×"),
            ("digit-classifier features", f"{ips['digits']:.0f} img/s", "–", "–", "–")]


def _sampling(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    fams = d.get("families")
    if fams:
        name, worst = max(fams.items(), key=lambda kv: kv[1]["ratio_n1_over_floor"])
        rows.append((f"sample(1), worst family ({name}), against its network's batch-1 "
                     "forward (x steps)", f"{worst['median_ms']['n=1']:.3g} ms",
                     f"{worst['floor_ms']:.3g} ms (bare network)",
                     f"{worst['ratio_n1_over_floor']:.2f}×", "≤ 1.5×"))
    versus = d.get("diffusers")
    if versus:
        for n, fig in versus["n"].items():
            ms = fig["per_step_ms"]
            rows.append((f"DDIM step fp32, n = {n}", f"{ms['ours ddim']:.1f} ms",
                         f"{ms['peer ddim']:.1f} ms", f"{ms['ours ddim'] / ms['peer ddim']:.2f}×",
                         "≤ 0.83× (1.2× faster)"))
    e2e = d.get("e2e")
    if e2e:
        rows.append(("zoo sample -n 2 --opt sampler=ddpm (32×32, T = 1000), end to end",
                     f"{e2e['end_to_end_ms'] / 1000:.1f} s",
                     f"{e2e['floor_ms'] / 1000:.1f} s (1000 batch-2 forwards)",
                     f"{e2e['ratio_end_to_end_over_floor']:.2f}×", "≤ 1.5×"))
    return rows


EXTRACTORS: dict[str, tuple[str, Extractor]] = {
    "dcgan_train": ("PyTorch examples DCGAN", _dcgan),
    "ddpm_vs_diffusers": ("diffusers", _ddpm),
    "vae_vs_pythae": ("pythae", _vae),
    "load": ("diffusers", _load),
    "dedup": ("imagededup", _dedup),
    "cold_start": ("python", _cold),
    "features": ("torch-fidelity", _features),
    "sample_latency": ("diffusers; the bare network", _sampling),
}


def table(quick: bool) -> tuple[str, list[str]]:
    """The markdown summary table and the list of result files it was read from."""
    lines = ["| figure | ours | peer | ratio | target |", "|---|---|---|---|---|"]
    files = []
    for name, (_, extract) in EXTRACTORS.items():
        data = load(name, quick)
        if data is None:
            lines.append(f"| {name} | – | – | no results | |")
            continue
        files.append(data["_file"])
        try:
            rows = extract(data)
        except (KeyError, TypeError) as exc:
            rows = [(name, "–", "–", f"unreadable results ({exc})", "")]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines), files


# --------------------------------------------------------------------------- plots


def plot_throughput(quick: bool) -> str | None:
    """DCGAN images/s against batch size, ours (default and fp32) and the peer."""
    import matplotlib.pyplot as plt

    series: dict[str, dict[int, float]] = {}
    sources = [(extra, load("dcgan_train", quick, extra), "CPU")
               for extra in SCRIPTS["dcgan_train"]]
    for gpu_file in sorted((RESULTS / "gpu").glob("dcgan_train*.cuda.json")):
        sources.append(([], json.loads(gpu_file.read_text()), "GPU"))
    for _, data, where in sources:
        if data is None:
            continue
        batch = data["settings"]["batch"]
        for config, rate in data["images_per_s"].items():
            if "compiled" not in config:
                series.setdefault(f"{config} ({where})", {})[batch] = rate
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(series.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=label,
                linestyle="-" if "ours" in label else "--")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="training images/s",
           title="DCGAN 64×64 training throughput")
    batches = sorted({b for points in series.values() for b in points})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.legend(fontsize=7)
    return save(fig, "throughput_vs_batch.png")


def plot_dedup(quick: bool) -> str | None:
    """Seconds per 1,000 images against N, ours and PHash (flat means linear)."""
    import matplotlib.pyplot as plt

    scaling = (load("dedup", quick) or {}).get("scaling")
    if not scaling:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("ours_s_per_1k", "zoo dedup"), ("phash_s_per_1k", "imagededup PHash")):
        points = [(row["n"], row[key]) for row in scaling if row.get(key)]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xscale="log", xlabel="images N", ylabel="seconds per 1,000 images",
           title="dedup: cost per image against N")
    ax.legend()
    return save(fig, "dedup_scaling.png")


def plot_quality() -> str | None:
    """Fréchet distance against training time for the recorded builds."""
    import matplotlib.pyplot as plt

    path = HERE / "quality.json"
    if not path.exists():
        return None
    runs = json.loads(path.read_text())["runs"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for family in sorted({r["family"] for r in runs}):
        pts = sorted((r["train_s"], r["fd"]) for r in runs if r["family"] == family)
        ax.plot(*zip(*pts, strict=True), marker="o", label=family)
    ax.set(xlabel="training time on 2 CPU cores (s)", ylabel="Fréchet distance (digit features)",
           title="sample quality against training time", yscale="log")
    ax.legend()
    return save(fig, "quality_vs_time.png")


def save(fig: Any, name: str) -> str:
    """Write a figure under docs/img; return its path relative to docs/."""
    IMG.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(IMG / name, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"img/{name}"


# --------------------------------------------------------------------------- report


def machine() -> str:
    """The CPU and the cores available, for the report's header."""
    import os

    from benchlib import cpu_model

    return f"{len(os.sched_getaffinity(0))} cores of {cpu_model()}"


def write_report(quick: bool, status: dict[str, dict[str, Any]]) -> str:
    """Replace the generated part of docs/benchmarks.md; return the table."""
    import matplotlib

    matplotlib.use("Agg")
    summary, files = table(quick)
    plots = [p for p in (plot_throughput(quick), plot_dedup(quick), plot_quality()) if p]
    total = sum(v.get("seconds", 0) for v in status.values())
    ran = ", ".join(f"{k} {'ok' if v['ok'] else 'FAILED'}"
                    + (f" ({v['seconds']:.0f} s)" if "seconds" in v else "")
                    for k, v in status.items()) or "nothing (report only)"
    body = "\n".join([
        BEGIN,
        "## Summary (`bench/run_all.py`)",
        "",
        f"Generated by `python bench/run_all.py{' --quick' if quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')} on {machine()}; ran: {ran}; {total:.0f} s in all. "
        "Ratios are ours / peer from the same "
        "run of each script (for times, lower is better; for rates, higher). Sources: "
        + ", ".join(f"`{f}`" for f in files) + ".",
        "",
        summary,
        "",
        *[f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots],
        END,
    ])
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{body}\n{rest}"
    REPORT.write_text(text)
    return summary


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every script's smoke-test settings")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=None,
                   help="run only these scripts (the report reads all results)")
    p.add_argument("--report-only", action="store_true", help="run nothing; rewrite the report")
    args = p.parse_args(argv)
    start = time.perf_counter()
    record = RESULTS / f"run_all{'.quick' if args.quick else ''}.json"
    if args.report_only:  # the scripts' status as the last run recorded it
        status = json.loads(record.read_text())["status"] if record.exists() else {}
    else:
        status = run_scripts(args.only or list(SCRIPTS), args.quick)
        record.write_text(json.dumps({"status": status, "seconds": round(
            time.perf_counter() - start, 1), "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    summary = write_report(args.quick, status)
    print(summary)
    print(f"run_all: {time.perf_counter() - start:.0f} s; wrote {REPORT}", flush=True)
    failed = [k for k, v in status.items() if not v["ok"]]
    if failed:
        raise SystemExit(f"run_all: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
