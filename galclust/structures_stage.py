"""The structures and emission stages of the run path (:mod:`galclust.structures`), with
their options.

**structures** finds density structures (AstroLink, or HDBSCAN) in every
catalog galaxy's footprint (in nightly runs only when asked for: ``method``
defaults to ``"off"`` there, as the stage is costly; ``galclust structures``
uses AstroLink), or on the whole cube by abutting tiles
(``--structures-mode tile``, a deep field). Per galaxy, each galaxy's smooth light
is subtracted first (``--host auto``: its clumps and components are the structures);
in tile mode it is kept (the galaxies are structures). Products: ``structures/table``
(one row per structure: galaxy ``id``, ``structure``, ``parent``,
``significance``, points, pixels, centroid, composite SED with errors),
``structures/galaxies`` (per galaxy: ``n_structures``, ``n_leaves``,
``max_significance``, flag and reason) and ``structures/stamps`` (label
stamps); in tile mode ``structures/labels`` (the map).

**emission** finds extended emission-line regions of every galaxy in the
medium band its redshift calls for (Hα, [OIII]+Hβ or Paβ), or a given band.
Products: ``emission/regions`` (one row per region with its measurements,
errors and outflow score), ``emission/galaxies`` (band, line, regions,
candidates, flag and reason) and ``emission/stamps``. It is skipped, saying
why, when no galaxy can have a band (no redshifts and no ``--emission-band``,
or no medium band in the cube).

Both are reused while the pixels, the segmentation and the options are unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from galclust.errors import InputError
from galclust.pipeline import (
    StagePlan,
    _inputs,
    _key,
    find_checkpoint,
    start_stage,
    write_checkpoint,
)
from galclust.products import EMISSION_PRODUCTS, STRUCTURES_PRODUCTS
from galclust.stage_options import EmissionOptions, StructuresOptions

__all__ = ["EmissionOptions", "StructuresOptions", "plan_emission", "plan_structures",
           "run_emission_stage", "run_structures_stage"]

def _boxes(inputs: Any, client: Any) -> Any:
    """Footprint boxes of the catalog galaxies (computed once per run)."""
    from galclust.pipeline import _footprints

    if inputs.footprints is None:
        inputs.footprints = _footprints(inputs.cube, inputs.catalog, client)
    return inputs.footprints


#: Versions of each stage's method, in its checkpoint key: a change of method that
#: keeps the options (emission 2: the detection map at 1 and 2 PSF FWHM; structures 2:
#: the image-S/N cut, 3: 400 points per pixel for AstroLink, 10 for HDBSCAN) makes a
#: stored result be recomputed once, not reused.
METHOD_VERSIONS = {"structures": 3, "emission": 2}


def _plan(inputs: Any, stage: str, options: Any) -> StagePlan:
    key = _key(stage, _inputs(inputs.cube, ("sci", "err", "weight", "seg", "catalog")),
               options.kwargs(), METHOD_VERSIONS[stage])
    cp = find_checkpoint(inputs.results, stage, key)
    return StagePlan(stage, key, "reuse" if cp else "compute", cp)


# --------------------------------------------------------------------------- structures
def plan_structures(inputs: Any, options: StructuresOptions) -> StagePlan:
    """Skip (not asked for, or nothing to measure), reuse or compute."""
    if options.method == "off":
        return StagePlan("structures", "", "skip", reason=(
            "density structures are not asked for (AstroLink costs ~2-3 s per 64x64 px "
            "galaxy after compiling for 40-60 s per worker): give --structure-method astrolink (or "
            "method = \"astrolink\" in the settings file's [structures] table), or run "
            "galclust structures"))
    if options.mode == "galaxies" and not len(inputs.catalog):
        return StagePlan("structures", "", "skip", reason="the catalog has no sources")
    return _plan(inputs, "structures", options)


def run_structures_stage(inputs: Any, run: Any, plan: StagePlan, options: StructuresOptions,
                         *, client: Any = None) -> dict[str, Any]:
    """Carry out a structures plan into ``run``; the checkpoint is written last."""
    from galclust.progress import Progress
    from galclust.sources.survey import cube_tiles
    from galclust.structures.survey import structure_tables

    t0 = time.perf_counter()
    done = start_stage(run, plan, STRUCTURES_PRODUCTS.values())
    if done:
        return {**done, "seconds": time.perf_counter() - t0}
    cube = inputs.cube
    boxes = None if options.mode == "tile" else _boxes(inputs, client)
    with Progress(len(cube_tiles(cube, None)), what="tiles", desc="structures") as bar:
        out = structure_tables(cube, None if boxes is None else
                               boxes[["id", "y0", "y1", "x0", "x1"]],
                               options=options.kwargs(), mode=options.mode, client=client,
                               progress=bar.update)
    written = []
    for name, frame in out.items():
        product = STRUCTURES_PRODUCTS[name]
        if name == "labels":
            import xarray as xr

            run.write_dataset(product, xr.Dataset({"labels": (("y", "x"), frame)}))
        elif len(frame):
            run.write_table(product, frame)
        else:
            continue
        written.append(product)
    write_checkpoint(run, "structures", plan.key, written)
    table, gal = out["structures"], out.get("galaxies")
    summary = {"action": "compute", "mode": options.mode, "method": options.method,
               "structures": int(len(table)), "seconds": time.perf_counter() - t0}
    if gal is not None and len(gal):
        summary["galaxies"] = int(len(gal))
        summary["flagged"] = int((gal["flag"] > 0).sum())
    return summary


# --------------------------------------------------------------------------- emission
def plan_emission(inputs: Any, options: EmissionOptions) -> StagePlan:
    """Skip when no galaxy can have a medium band; else reuse or compute."""
    from galclust.structures.emission import band_for_redshift

    bands = [str(b) for b in inputs.cube["band"].values]
    wavelength = np.asarray(inputs.cube["wavelength"].values, dtype=float)
    if options.band is not None:
        if options.band not in bands:
            from galclust.errors import did_you_mean

            raise InputError(f"--emission-band {options.band!r} is not in the cube (bands: "
                             f"{', '.join(bands)}){did_you_mean(options.band, bands)}.")
    else:
        z = inputs.catalog["z"].to_numpy(float) if "z" in inputs.catalog else np.array([])
        z = np.unique(np.round(z[np.isfinite(z) & (z >= 0)], 3))
        if not len(z):
            return StagePlan("emission", "", "skip", reason=(
                "no catalog redshifts: each galaxy's medium band follows from its z (give a "
                "redshift column in [catalog], or --emission-band BAND)"))
        if all(band_for_redshift(float(v), bands, wavelength)[0] is None for v in z):
            return StagePlan("emission", "", "skip", reason=(
                f"no medium band of the cube ({', '.join(bands)}) holds Halpha, [OIII], "
                "Hbeta or Pabeta at any catalog redshift"))
    return _plan(inputs, "emission", options)


def run_emission_stage(inputs: Any, run: Any, plan: StagePlan, options: EmissionOptions, *,
                       client: Any = None) -> dict[str, Any]:
    """Carry out an emission plan into ``run``; the checkpoint is written last."""
    from galclust.progress import Progress
    from galclust.sources.survey import cube_tiles
    from galclust.structures.survey import emission_tables

    t0 = time.perf_counter()
    done = start_stage(run, plan, EMISSION_PRODUCTS.values())
    if done:
        return {**done, "seconds": time.perf_counter() - t0}
    boxes = _boxes(inputs, client)
    opts = {"band": options.band, "nsigma": float(options.nsigma),
            "psf_fwhm": float(options.psf_fwhm)}
    with Progress(len(cube_tiles(inputs.cube, None)), what="tiles", desc="emission") as bar:
        out = emission_tables(inputs.cube, boxes[["id", "y0", "y1", "x0", "x1", "z"]],
                              options=opts, margin=options.margin, client=client,
                              progress=bar.update)
    written = []
    for name, frame in out.items():
        if len(frame):
            run.write_table(EMISSION_PRODUCTS[name], frame)
            written.append(EMISSION_PRODUCTS[name])
    write_checkpoint(run, "emission", plan.key, written)
    gal = out["galaxies"]
    return {"action": "compute", "galaxies": int(len(gal)),
            "with_regions": int((gal.get("n_regions", 0) > 0).sum()) if len(gal) else 0,
            "candidates": int(gal["n_candidates"].sum()) if len(gal) else 0,
            "not_measured": int((gal["flag"] > 0).sum()) if len(gal) else 0,
            "seconds": time.perf_counter() - t0}
