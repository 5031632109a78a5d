"""Association of one image's detections with the sky model (TraP's de Ruiter method).

A detection and a known source are candidates when they are closer than
``beamwidth_limit`` beam semi-major axes and their de Ruiter radius

    r = sqrt( de^2 / (se_1^2 + se_2^2) + dn^2 / (sn_1^2 + sn_2^2) )

(east/north offsets over the combined east/north errors, systematic errors included)
is below ``de_ruiter_radius``. Candidate pairs are then resolved as TraP does:

* one-to-one: pairs are taken greedily in order of increasing r, each detection and
  each source at most once; a taken pair extends the source's lightcurve and refines
  its weighted mean position.
* one-to-many (one source, several detections): the best detection extends the
  source; every other becomes a new source whose ``parent`` is that source (the
  lightcurve forks, recorded as a relation), never a new-source candidate.
* many-to-one (several sources, one detection, as when two sources blend): the
  detection extends its best source; the other sources also receive it as their
  measurement ("shared"), without moving their positions.
* many-to-many: the same greedy order resolves it into the cases above.
* no candidate: a new source (a new-source candidate if earlier images were deep
  enough to have seen it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trapline.geometry import offsets_deg, unit_vectors
from trapline.pipeline.skymodel import SkyModel


@dataclass
class Association:
    """Outcome for one image's N detections.

    Attributes:
        source_row: sky-model row each detection extends (-1: becomes a new source).
        parent_row: for forks (one-to-many), the row of the source it split from, else -1.
        shared_rows, shared_detections: extra (row, detection) pairs of many-to-one.
        de_ruiter: the radius of each detection's taken pair (NaN for new sources).
    """

    source_row: np.ndarray
    parent_row: np.ndarray
    shared_rows: np.ndarray
    shared_detections: np.ndarray
    de_ruiter: np.ndarray


def candidate_pairs(
    sky: SkyModel,
    ra: np.ndarray,
    dec: np.ndarray,
    ra_err: np.ndarray,
    dec_err: np.ndarray,
    radius_deg: float,
    max_de_ruiter: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(detection index, sky row, de Ruiter radius) of every pair within both limits."""
    tree, rows = sky.tree()
    if tree is None or len(ra) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    chord = 2.0 * np.sin(np.radians(radius_deg) / 2.0)
    hits = tree.query_ball_point(unit_vectors(ra, dec), chord)
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    det = np.repeat(np.arange(len(ra)), counts)
    if len(det) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    src = rows[np.concatenate([np.asarray(h, dtype=np.int64) for h in hits if h])]
    s = sky.sources
    src_e, src_n = sky.errors(src)
    east, north = offsets_deg(s.ra[src], s.dec[src], ra[det], dec[det])
    r = np.sqrt(east**2 / (src_e**2 + ra_err[det] ** 2)
                + north**2 / (src_n**2 + dec_err[det] ** 2))
    keep = r < max_de_ruiter
    return det[keep], src[keep], r[keep]


def resolve(n_detections: int, det: np.ndarray, src: np.ndarray, r: np.ndarray) -> Association:
    """Turn candidate pairs into the one-to-one / one-to-many / many-to-one outcome."""
    source_row = np.full(n_detections, -1, dtype=np.int64)
    parent_row = np.full(n_detections, -1, dtype=np.int64)
    radius = np.full(n_detections, np.nan)
    order = np.argsort(r, kind="stable")
    taken_sources: set[int] = set()
    for k in order:
        d, s = int(det[k]), int(src[k])
        if source_row[d] >= 0 or s in taken_sources:
            continue
        source_row[d] = s
        radius[d] = r[k]
        taken_sources.add(s)
    # Detections that had candidates but lost every one of them fork their best source.
    best_src_of_det: dict[int, int] = {}
    best_det_of_src: dict[int, int] = {}
    for k in order:
        best_src_of_det.setdefault(int(det[k]), int(src[k]))
        best_det_of_src.setdefault(int(src[k]), int(det[k]))
    for d, s in best_src_of_det.items():
        if source_row[d] < 0:
            parent_row[d] = s
    # Sources that had candidates but got no detection share their best one.
    shared = [(s, d) for s, d in best_det_of_src.items()
              if s not in taken_sources and source_row[d] >= 0]
    shared_rows = np.array([s for s, _ in shared], dtype=np.int64)
    shared_dets = np.array([d for _, d in shared], dtype=np.int64)
    return Association(source_row, parent_row, shared_rows, shared_dets, radius)


def associate(
    sky: SkyModel,
    ra: np.ndarray,
    dec: np.ndarray,
    ra_err: np.ndarray,
    dec_err: np.ndarray,
    beam_semimajor_deg: float,
    beamwidth_limit: float = 3.0,
    max_de_ruiter: float = 5.68,
) -> Association:
    """Associate detections (deg; errors as arcs, systematics included) with the sky."""
    det, src, r = candidate_pairs(sky, ra, dec, ra_err, dec_err,
                                  beamwidth_limit * beam_semimajor_deg, max_de_ruiter)
    return resolve(len(ra), det, src, r)
