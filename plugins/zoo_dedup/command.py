"""The ``zoo dedup`` command, added to the ``zoo`` app by the plugin's ``register_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

COMMAND = "dedup"


def add_dedup_command(app: Any) -> None:
    """Register ``zoo dedup`` on ``app`` once (the hook may run once per CLI call)."""
    if any(getattr(c, "name", None) == COMMAND for c in app.registered_commands):
        return
    app.command(COMMAND)(dedup_cmd)


def dedup_cmd(
    source: Annotated[str, typer.Argument(
        help="Folder of images (searched recursively) or a registered data set, e.g. mnist5k.")],
    model: Annotated[str | None, typer.Option(
        "--model", help="Reuse this dedup-ae model (folder or Hub id) instead of training.")
    ] = None,
    save_model: Annotated[Path | None, typer.Option(
        "--save-model", help="Where to write the trained model (default runs/dedup-NAME).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain over an existing --save-model.")] = False,
    max_distance: Annotated[int, typer.Option(
        "--max-distance", "-k", min=0, max=63,
        help="Match hashes within this Hamming distance (0: identical hashes).")] = 4,
    max_angle: Annotated[float, typer.Option(
        "--max-angle", min=0.0, max=180.0,
        help="Confirm a hash match only if the ReLU codes are at most this many degrees "
        "apart (180: accept every hash match).")] = 4.0,
    flip: Annotated[bool, typer.Option(
        "--flip/--no-flip", help="Count a mirror image as a duplicate (hash both).")] = True,
    report: Annotated[list[Path] | None, typer.Option(
        "--report", help="Write the groups to FILE.json or FILE.csv (repeatable).")] = None,
    write_clean: Annotated[Path | None, typer.Option(
        "--write-clean", help="Write a deduplicated copy here (a new folder).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a training spec key: a.b=value.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per hashing batch.")] = 1024,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Include symbolic links to files outside SOURCE (left out by "
        "default: a link could be kept over the real image).")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Find near-duplicate images by semantic hashing (the DCGAN paper's autoencoder).

    Trains a dedup-ae on SOURCE (or reuses --model), hashes every image, matches
    hashes within --max-distance bits (multi-index hashing), confirms each match
    by the angle between the codes, groups matches (union-find), prints a summary
    and writes the reports and the clean copy asked for. Originals are never changed.
    """
    from zoo_dedup import report as reports
    from zoo_dedup.pipeline import dedup

    for path in report or []:
        reports.check_report_path(path, source)
    if write_clean is not None:
        reports.check_clean_dir(write_clean, source)
    result = dedup(source, model=model, save_model=save_model, force=force,
                   max_distance=max_distance,
                   max_angle=None if max_angle >= 180 else max_angle, flip=flip,
                   overrides=sets or [],
                   batch_size=batch_size, progress=not quiet, follow_links=follow_links)
    lines = reports.summary(result)
    for path in report or []:
        reports.write_report(result, path)
        lines.append(f"wrote {reports.shown(path)}")
    if write_clean is not None:
        kept = reports.write_clean(result, write_clean)
        lines.append(f"wrote {kept:,} images to {reports.shown(write_clean)}")
    for line in lines:
        print(line)
