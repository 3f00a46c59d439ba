"""The detection and morphology stages of the run path (:mod:`galclust.sources`).

**detect** runs :func:`galclust.detect` over the cube on overlapping tiles
(:func:`galclust.sources.survey.detect_cube`) and publishes ``detect/sources``
(one row per source: id, x, y, ra, dec, fluxes and errors per band, area,
semi-axes, position angle, S/N, parent, flag) and ``detect/seg`` (the (y, x)
map). It is skipped when the cube's own segmentation map and catalog *are*
this detection (made at ingest from a manifest without them, with the same
options). It is reused while the bands and options are unchanged.

**morphology** measures :func:`galclust.morphology` (statmorph's definitions)
in one band (default: the reddest) at each level asked for:

- ``morphology/galaxies`` — every segment of the cube's segmentation map;
- ``morphology/detections`` — every source of the detect stage's map;
- ``morphology/clusters`` — every SED cluster of every galaxy of the pixel
  stage (``id``, ``cluster``): a galaxy's blue clumps and red bulge each get
  a Gini and an asymmetry.

A level whose input the run does not hold (no detection map, no pixel
clusters) is left out with its reason in the stage summary.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from galclust.options import DetectOptions, MorphologyOptions
from galclust.pipeline import (
    StagePlan,
    _inputs,
    _key,
    find_checkpoint,
    start_stage,
    write_checkpoint,
)
from galclust.products import (
    DETECT_PRODUCTS,
    DETECT_SEG,
    DETECT_SOURCES,
    MORPHOLOGY_PRODUCTS,
    STAMPS,
)
from galclust.sky import pixel_to_sky
from galclust.sources.defaults import DETECT_VERSION
from galclust.store.results import RunWriter

__all__ = ["detect_survey", "plan_detect", "plan_morphology", "run_detect_stage",
           "run_morphology_stage"]

log = logging.getLogger(__name__)

#: The cube attribute recording a detection made at ingest (its options and counts).
INGEST_DETECTION = "detection"


def _bands(cube: Any) -> dict[str, str]:
    return _inputs(cube, ("sci", "err", "weight"))


def plan_detect(inputs: Any, options: DetectOptions) -> StagePlan:
    """Skip (the cube's catalog is this detection: same options, same method version),
    reuse, or compute."""
    made = inputs.cube.attrs.get(INGEST_DETECTION)
    if (made and made.get("options") == options.kwargs() | {"halo": options.halo}
            and made.get("version") == DETECT_VERSION):
        return StagePlan("detect", "", "skip", reason=(
            "the cube's segmentation map and catalog are this detection (made at ingest "
            "with the same options and method version): the other stages use them as the "
            "sources"))
    key = _key("detect", _bands(inputs.cube), options.kwargs(), options.halo, DETECT_VERSION)
    cp = find_checkpoint(inputs.results, "detect", key)
    return StagePlan("detect", key, "reuse" if cp else "compute", cp)


def detect_survey(cube: Any, target: Any, options: DetectOptions, *, client: Any = None,
                  desc: str = "detect") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Tiled detection of a cube into ``target``; the sources with RA/Dec, and the info."""
    from galclust.progress import Progress
    from galclust.sources.survey import cube_tiles, detect_cube

    n_tiles = len(cube_tiles(cube, None))
    with Progress(2 * n_tiles, what="tiles", desc=desc) as bar:
        sources, info = detect_cube(cube, target, options=options.kwargs(), halo=options.halo,
                                    client=client, progress=bar.update)
    ra, dec = pixel_to_sky(cube.attrs["wcs"], sources["x"], sources["y"])
    sources.insert(3, "ra", ra)
    sources.insert(4, "dec", dec)
    return sources, info


def run_detect_stage(inputs: Any, run: RunWriter, plan: StagePlan, options: DetectOptions, *,
                     client: Any = None) -> dict[str, Any]:
    """Carry out a detection plan into ``run``; the checkpoint is written last."""
    t0 = time.perf_counter()
    done = start_stage(run, plan, DETECT_PRODUCTS)
    if done:
        return {**done, "seconds": time.perf_counter() - t0}
    cube = inputs.cube
    tile = int(cube["sci"].chunks[1][0]) if cube["sci"].chunks else int(cube.sizes["y"])
    target = run.seg_target(DETECT_SEG, (int(cube.sizes["y"]), int(cube.sizes["x"])), tile)
    sources, info = detect_survey(cube, target, options, client=client)
    run.write_table(DETECT_SOURCES, sources)
    write_checkpoint(run, "detect", plan.key, list(DETECT_PRODUCTS), info=info)
    run.provenance.setdefault("detect", {}).update(info)
    return {"action": "compute", "sources": int(len(sources)), **info,
            "blended": int((sources["parent"] != sources["id"]).sum()) if len(sources) else 0,
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- morphology
def plan_morphology(inputs: Any, options: MorphologyOptions,
                    plans: dict[str, StagePlan]) -> StagePlan:
    """Reuse while the pixels, the maps, the earlier stages' plans and the options are
    unchanged; else compute."""
    from galclust.sources.survey import detection_image_band

    detection_image_band(inputs.cube, options.band)  # an unknown band fails the plan
    # an upstream stage's key names its products' content (a skipped one: none this run)
    upstream = {name: p.key for name, p in plans.items() if name in ("detect", "pixels")}
    key = _key("morphology", _inputs(inputs.cube, ("sci", "err", "weight", "seg")),
               options.kwargs(), upstream)
    cp = find_checkpoint(inputs.results, "morphology", key)
    if cp is not None:
        return StagePlan("morphology", key, "reuse", cp)
    return StagePlan("morphology", key, "compute")


def run_morphology_stage(inputs: Any, run: RunWriter, plan: StagePlan,
                         options: MorphologyOptions, *, client: Any = None) -> dict[str, Any]:
    """Carry out a morphology plan into ``run``: one table per level."""
    from galclust.pixels.survey import decode_labels, segment_boxes
    from galclust.progress import Progress
    from galclust.sources.survey import (
        cluster_morphology_tables,
        cube_tiles,
        detection_image_band,
        morphology_tables,
    )

    t0 = time.perf_counter()
    done = start_stage(run, plan, MORPHOLOGY_PRODUCTS.values())
    if done:
        return {**done, "seconds": time.perf_counter() - t0}
    cube = inputs.cube
    band = detection_image_band(cube, options.band)
    band_name = str(cube["band"].values[band])
    summary: dict[str, Any] = {"action": "compute", "band": band_name, "levels": {}}
    left_out: dict[str, str] = {}
    for level in options.level_names:
        if level == "galaxies":
            boxes = (inputs.footprints if inputs.footprints is not None
                     else segment_boxes(cube["seg"], scheduler=client))
            seg = cube["seg"].data
        elif level == "detections":
            if DETECT_SEG not in run.products:
                left_out[level] = "no detection map (run the detect stage)"
                continue
            seg = run.dataset(DETECT_SEG)["seg"].data
            boxes = segment_boxes(seg, scheduler=client)
        else:
            if STAMPS not in run.products:
                left_out[level] = "no pixel clusters (run the pixels stage)"
                continue
            stamps = run.table(STAMPS, columns=["id", "y0", "x0", "ny", "nx"])
        with Progress(len(cube_tiles(cube, None)), what="tiles", desc=f"morphology {level}") as bar:
            if level == "clusters":
                table = cluster_morphology_tables(cube, stamps, run.reader(STAMPS), band=band,
                                                  decode=decode_labels, margin=options.margin,
                                                  client=client, progress=bar.update)
            else:
                table = morphology_tables(cube, seg, boxes[["id", "y0", "y1", "x0", "x1"]],
                                          band=band, margin=options.margin, client=client,
                                          progress=bar.update)
        if table.empty:
            left_out[level] = "no segments"
            continue
        table.insert(1 + (level == "clusters"), "band", band_name)
        run.write_table(MORPHOLOGY_PRODUCTS[level], table)
        summary["levels"][level] = {"rows": int(len(table)),
                                    "flagged": int((table["flag"] > 0).sum())}
    written = [MORPHOLOGY_PRODUCTS[v] for v in summary["levels"]]
    write_checkpoint(run, "morphology", plan.key, written)
    if left_out:
        summary["left_out"] = left_out
    summary["seconds"] = time.perf_counter() - t0
    return summary
