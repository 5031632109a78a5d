"""Association partitioned by sky region: independent pipelines per HEALPix tile.

Each tile's :class:`~trapline.pipeline.core.Pipeline` sees the detections in its tile
and in a margin around it, and keeps its own sky model, depth map and statistics. A
source within the margin of two tiles lives in both, as identical copies: both see
the same detections around it, decide the same way and give a new source the same id
(from the image's sequence number and the detection's index in the whole catalogue).
So partitions never talk to each other; each reports only what it owns (sources whose
position is in its tile, depth cells whose centre is), and the union of the reports is
the image's result. The margin must exceed the association radius plus the largest
distance over which association decisions interact (a few beams); the default 0.5 deg
suits beams up to a few arcminutes. The partitions are independent, so they can run in
parallel processes or on different machines: with a Dask scheduler each partition is
an actor on a worker (:meth:`PartitionedPipeline.use_client`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from astropy import units as u
from astropy.coordinates import Latitude, Longitude
from astropy_healpix import HEALPix

from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.core import Pipeline
from trapline.pipeline.geometry import shift_position
from trapline.pipeline.measure import Measured
from trapline.pipeline.records import (
    BandStatistics,
    Candidates,
    DepthUpdates,
    ImageResult,
    Measurements,
    SourceStates,
)

# New source ids: image sequence number times this, plus the detection's index.
ID_STRIDE = 1 << 24


class PartitionedPipeline:
    """Pipelines per HEALPix tile (``nside``) with ``margin_deg`` of overlap."""

    def __init__(self, config: PipelineConfig | None = None, nside: int = 8,
                 margin_deg: float = 0.5):
        self.config = config or PipelineConfig()
        self.tiles = HEALPix(nside=nside, order="nested")
        self.margin_deg = margin_deg
        self.partitions: dict[int, Pipeline] = {}
        self.sequence = 0
        self.client = None
        self._footprints: dict[tuple, np.ndarray] = {}
        self._depth_healpix: HEALPix | None = None
        self._stored = None  # state to give partitions created after a resume

    def use_client(self, client) -> None:
        """Run the partitions as actors on a Dask distributed cluster (each keeps its
        state on a worker; images are sent to the partitions they touch)."""
        if self.partitions:
            raise RuntimeError("partitions already started in this process")
        self.client = client

    def tile_of(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.asarray(self.tiles.lonlat_to_healpix(Longitude(np.asarray(ra) * u.deg),
                                                       Latitude(np.asarray(dec) * u.deg)))

    def tiles_near(self, ra: np.ndarray, dec: np.ndarray) -> list[np.ndarray]:
        """Per position, the tiles within ``margin_deg`` (its own and its neighbours')."""
        ra, dec = np.atleast_1d(ra), np.atleast_1d(dec)
        found = [self.tile_of(ra, dec)]
        for angle in np.radians(np.arange(0, 360, 30)):
            for frac in (0.5, 1.0):
                east = frac * self.margin_deg * np.sin(angle)
                north = frac * self.margin_deg * np.cos(angle)
                r, d = shift_position(ra, dec, np.full(len(ra), east), np.full(len(ra), north))
                found.append(self.tile_of(r, d))
        stacked = np.stack(found, axis=1)
        return [np.unique(row) for row in stacked]

    def _image_tiles(self, image) -> np.ndarray:
        w = image.wcs.wcs
        key = (tuple(w.crval), tuple(w.crpix), tuple(w.cdelt), image.shape)
        tiles = self._footprints.get(key)
        if tiles is None:
            ny, nx = image.shape
            step = max(1, min(ny, nx) // 16)
            gy, gx = np.mgrid[0:ny:step, 0:nx:step]
            with np.errstate(invalid="ignore"):
                ra, dec = image.pixel_to_sky(gx.ravel(), gy.ravel())
            good = np.isfinite(ra) & np.isfinite(dec)
            tiles = np.unique(np.concatenate(self.tiles_near(ra[good], dec[good])))
            if len(self._footprints) >= 64:  # a drifting pointing is new every image
                self._footprints.clear()
            self._footprints[key] = tiles
        return tiles

    def _partition(self, tile: int):
        pipeline = self.partitions.get(tile)
        if pipeline is None:
            if self.client is not None:
                pipeline = self.client.submit(Pipeline, self.config, actor=True).result()
            else:
                pipeline = Pipeline(self.config)
            self.partitions[tile] = pipeline
            if self._stored is not None:
                _wait(pipeline.restore(self._tile_state(tile)))
        return pipeline

    def restore(self, state) -> None:
        """Resume from a stored run: each partition gets the sources in its tile and
        margin, their sums, the depth map and the run-state values, when it is created."""
        self.sequence = int(state.values.get("partition_sequence", 0))
        if not len(state.sources) and not len(state.depth):
            return
        self._stored = state
        src = state.sources
        near = self.tiles_near(src.ra, src.dec) if len(src) else []
        self._stored_near = near
        for tile in np.unique(np.concatenate(near)) if near else []:
            self._partition(int(tile))

    def _tile_state(self, tile: int):
        from trapline.storage.state import StoredState

        state = self._stored
        src = state.sources
        mask = np.array([tile in t for t in self._stored_near], dtype=bool)
        ids = src.source_id[mask] if len(src) else np.zeros(0, dtype=np.int64)
        stats = state.statistics
        keep = np.isin(stats.source_id, ids) if len(stats) else np.zeros(0, dtype=bool)
        return StoredState(sources=_select(src, mask) if len(src) else src,
                           statistics=_select(stats, keep) if len(stats) else stats,
                           depth=state.depth, monitors=[], values=dict(state.values))

    def state_values(self) -> dict[str, str]:
        """Run-state values to store with each image (identical in every partition)."""
        values = {"partition_sequence": str(self.sequence)}
        if self.partitions:
            first = next(iter(self.partitions.values()))
            values.update(_wait(first.state_values()))
            values.pop("next_source_id", None)
        return values

    def owned_source_ids(self) -> set[int]:
        """Ids of the blind sources over all partitions, each from its owner."""
        owned: set[int] = set()
        for tile, part in self.partitions.items():
            owned.update(np.asarray(_wait(part.owned_sources(self.tiles.nside, tile))).tolist())
        return owned

    def process(self, measured: Measured) -> ImageResult:
        """One image through every partition it touches; their owned parts merged."""
        if not measured.record.accepted or measured.extraction is None:
            return ImageResult(measured.record)
        self.sequence += 1
        ex = measured.extraction
        cat = ex.sources
        near = self.tiles_near(cat.ra_deg, cat.dec_deg) if len(cat) else []
        pending = []
        for tile in self._image_tiles(ex.image):
            pipeline = self._partition(int(tile))
            mine = np.array([tile in t for t in near], dtype=bool)
            sub = replace(ex, sources=cat.select(mine))
            sub.detection_index = np.flatnonzero(mine)
            record = replace(measured.record)
            pending.append((int(tile), pipeline.process(Measured(record, sub),
                                                        self.sequence * ID_STRIDE)))
        # On a cluster the partitions work at once; results are collected in tile order.
        parts = [(tile, _wait(r)) for tile, r in pending]
        return self._merge(measured, parts)

    def _merge(self, measured: Measured, parts) -> ImageResult:
        record = parts[0][1].image if parts else measured.record
        if not record.accepted:
            return ImageResult(record)
        owned = [(tile, result) for tile, result in parts if result.image.accepted]
        pieces = {"measurements": [], "sources": [], "statistics": [], "candidates": [],
                  "depth": []}
        for tile, result in owned:
            src = result.sources
            own_src = self.tile_of(src.ra, src.dec) == tile if len(src) else np.zeros(0, bool)
            mine = set(src.source_id[own_src].tolist())
            for name in ("measurements", "statistics", "candidates"):
                cols = getattr(result, name)
                keep = np.array([s in mine for s in cols.source_id], dtype=bool)
                pieces[name].append(_select(cols, keep))
            pieces["sources"].append(_select(src, own_src))
            depth = result.depth
            if len(depth):
                lon, lat = self._depth_cells(measured).healpix_to_lonlat(depth.cell)
                keep = self.tile_of(lon.to_value(u.deg), lat.to_value(u.deg)) == tile
                pieces["depth"].append(_select(depth, keep))
        record.n_blind = len(measured.extraction.sources)
        merged = {name: _concat(cls, pieces[name]) for name, cls in (
            ("measurements", Measurements), ("sources", SourceStates),
            ("statistics", BandStatistics), ("candidates", Candidates),
            ("depth", DepthUpdates))}
        record.n_forced = int((merged["measurements"].kind == 1).sum())
        record.n_monitor = int((merged["measurements"].kind == 2).sum())
        return ImageResult(image=record, **merged)


    def _depth_cells(self, measured: Measured) -> HEALPix:
        """The partitions' depth-map grid (the same in all, set by the first image)."""
        if self._depth_healpix is None:
            from trapline.pipeline.depth import nside_for_beam

            ns = self.config.new_source
            nside = ns.depth_nside or nside_for_beam(measured.extraction.image.beam.bmaj_deg,
                                                     ns.depth_cell_beams)
            self._depth_healpix = HEALPix(nside=nside, order="nested")
        return self._depth_healpix


def _wait(value):
    """The value of a Dask actor call, or the value itself in process."""
    return value.result() if hasattr(value, "result") else value


def _select(columns, keep: np.ndarray):
    return type(columns)(**{n: np.asarray(v)[keep] for n, v in columns.as_dict().items()})


def _concat(cls, parts):
    parts = [p for p in parts if len(p)]
    if not parts:
        return cls.empty()
    return cls(**{n: np.concatenate([np.asarray(getattr(p, n)) for p in parts])
                  for n in cls.names()})
