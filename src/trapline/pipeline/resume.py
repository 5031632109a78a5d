"""Rebuilding the in-memory pipeline from a store: time proportional to the number of
sources (their rows and running sums), never to the number of measurements."""

from __future__ import annotations

import json

import numpy as np

from trapline.pipeline.core import Pipeline


def restore(pipeline: Pipeline, state) -> None:
    """Load sources, per-band sums, the depth map, bands and the next source id."""
    src = state.sources
    sky = pipeline.sky
    if len(src):
        rows = sky.add(src.ra, src.dec, src.ra_err, src.dec_err, np.nan,
                       source_ids=np.asarray(src.source_id, dtype=np.int64))
        s = sky.sources
        s.is_monitor[rows] = np.asarray(src.is_monitor, dtype=bool)
        s.first_time[rows] = src.first_time_mjd
        s.last_time[rows] = src.last_time_mjd
        s.n_blind[rows] = src.n_blind
        s.n_forced[rows] = src.n_forced
    stats = state.statistics
    if len(stats):
        ids = sky.sources.source_id
        order = np.argsort(ids)
        rows = order[np.searchsorted(ids[order], np.asarray(stats.source_id, np.int64))]
        v = pipeline.config.variability
        for band in np.unique(stats.band):
            sel = np.asarray(stats.band) == band
            b = sky.band(int(band))
            r = rows[sel]
            for name in ("sw_int", "swf_int", "swf2_int", "sf_int", "sf2_int", "sw_peak",
                         "swf_peak", "swf2_peak", "sf_peak", "sf2_peak", "max_snr"):
                b.full(name)[r] = np.nan_to_num(np.asarray(getattr(stats, name))[sel])
            b.full("n")[r] = np.asarray(stats.n)[sel]
            b.full("misses")[r] = np.asarray(stats.misses)[sel]
            with np.errstate(invalid="ignore"):
                b.full("flagged")[r] = ((np.asarray(stats.n)[sel] >= v.min_points)
                                        & (np.asarray(stats.eta_int)[sel] > v.eta_threshold)
                                        & (np.asarray(stats.v_int)[sel] > v.v_threshold))
    depth = state.depth
    values = state.values
    if len(depth):
        pipeline.depth.load(int(values.get("depth_nside", 0)), np.asarray(depth.band),
                            np.asarray(depth.cell), np.asarray(depth.limit),
                            np.asarray(depth.worst))
    if "next_source_id" in values:
        sky.next_id = max(sky.next_id, int(values["next_source_id"]))
    if "band_centres_hz" in values:
        pipeline.bands.centres = [float(f) for f in json.loads(values["band_centres_hz"])]
