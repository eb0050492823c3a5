"""Index (build) and query time of ``scene`` (Hays & Efros) at 1,000 and 10,000 photos.

Nothing is downloaded: the databases are synthetic photos, random crops,
scales, flips and colour jitter of scikit-image's bundled photographs
(``zoo_nonparametric.photos``), written as PNGs to a temporary folder and
read through genzoo's ``folder`` source at 64×64. For each size:

* ``index``: ``zoo.build`` wall time (listing and decoding the folder, the
  descriptors, writing the model folder with a one-image sample grid);
* ``search``: the descriptor search alone, the masked distance to every
  scene (median of 20);
* ``query``: one completion, ``model.sample(1, input=photo, mask=hole)``:
  search, alignment of the ``model.candidates`` = 20 nearest scenes, graph
  cut and Poisson blend of the best (median over 5 query photos that are not
  in the database, a 24×24 hole in the middle).

The search is linear in the database size; the rest of a query does not
depend on it. Usage::

    OMP_NUM_THREADS=1 python bench/scene.py            # 1,000 and 10,000 photos
    OMP_NUM_THREADS=1 python bench/scene.py --quick    # 200 and 2,000

Results go to ``bench/results/scene.json`` (``--quick``: ``scene.quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import RESULTS, machine_info

SIZE = 64  # image side
QUERIES = 5


def main() -> None:
    """Build both databases, time them and their queries, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 2,000 photos")
    args = parser.parse_args()
    from zoo_nonparametric.photos import collection, write_folder
    from zoo_nonparametric.scene_descriptor import describe, distances

    import zoo

    sizes = (200, 2000) if args.quick else (1000, 10_000)
    info = machine_info()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        photos = collection(sizes[-1] * 9 // 8, SIZE, seed=0)  # ~90 % are the train split
        queries = collection(QUERIES, SIZE, seed=12345)
        everything = write_folder(photos, Path(tmp) / "all")
        print(f"synthesised and wrote {len(photos)} photos in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        hole = torch.zeros(SIZE, SIZE)
        hole[20:44, 20:44] = 1
        for count in sizes:
            folder = Path(tmp) / f"db{count}"
            folder.mkdir()
            for i in range(count * 9 // 8):
                os.link(everything / f"{i:05d}.png", folder / f"{i:05d}.png")
            overrides = ["data.source=folder", f"data.path={folder}",
                         f"data.image_size={SIZE}", f"data.fit_images={count * 2}",
                         f"model.database={count}", "sample.n=1"]
            load = os.getloadavg()[0]
            started = time.perf_counter()
            run = zoo.build("scene", overrides=overrides, out=Path(tmp) / f"run{count}")
            index_s = time.perf_counter() - started
            model = zoo.from_pretrained(run)
            m = model.spec.model
            database = model.module.descriptors.numpy()
            photo = torch.from_numpy(queries[0]).permute(2, 0, 1).double().numpy() / 255
            known = hole.numpy() < 0.5
            query, weights = describe(photo[None], known[None], m.grid, m.scales,
                                      m.orientations, m.colour_weight)
            search = []
            for _ in range(20):
                started = time.perf_counter()
                distances(query[0], weights[0], database)
                search.append(time.perf_counter() - started)
            times = []
            for q in queries:
                image = torch.from_numpy(q).permute(2, 0, 1).float() / 255
                started = time.perf_counter()
                model.sample(1, input=image, mask=hole)
                times.append(time.perf_counter() - started)
            row = {"images": count, "index_s": index_s,
                   "search_ms": 1000 * statistics.median(search),
                   "query_s": statistics.median(times), "query_all_s": times,
                   "candidates": m.candidates, "image_size": SIZE,
                   "load_before": load, "load_after": os.getloadavg()[0],
                   "model_bytes": (run / "model.safetensors").stat().st_size}
            rows.append(row)
            print(f"scene {count:>6} photos: index {index_s:.1f} s, search "
                  f"{row['search_ms']:.2f} ms, query {row['query_s']:.2f} s (median of "
                  f"{QUERIES}, k = {m.candidates}), load {load:.2f}", flush=True)
    growth = rows[1]["query_s"] / rows[0]["query_s"]
    print(f"query time x{growth:.2f} for x{sizes[1] // sizes[0]} photos (search "
          f"x{rows[1]['search_ms'] / rows[0]['search_ms']:.1f})")
    out = RESULTS / f"scene{'.quick' if args.quick else ''}.json"
    out.write_text(json.dumps({"machine": info, "loadavg_at_end": os.getloadavg(),
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
