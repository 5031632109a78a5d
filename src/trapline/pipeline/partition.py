"""Association partitioned by sky region: independent pipelines per HEALPix tile.

Each tile's :class:`~trapline.pipeline.decide.SkyDecider` sees the detections in its tile
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
an actor on a worker (:meth:`PartitionedDecider.use_client`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

from trapline.errors import ConfigError
from trapline.geometry import healpix_cells, shift_position
from trapline.pipeline.bands import BandAssigner
from trapline.pipeline.calibrate import (
    Calibration,
    ModulationHistory,
    References,
    fit_calibration,
)
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import SkyDecider, frequency_order
from trapline.pipeline.depth import nside_for_beam
from trapline.pipeline.measure import Measured
from trapline.records import (
    BandStatistics,
    Candidates,
    DepthUpdates,
    Forks,
    ImageResult,
    Measurements,
    PrecoveryPoints,
    SourceStates,
    Stamps,
    StoredState,
    concat,
)

# New source ids: image sequence number times this, plus the detection's index.
ID_STRIDE = 1 << 24


class PartitionedDecider:
    """Sky deciders per HEALPix tile (``nside``) with ``margin_deg`` of overlap."""

    def __init__(self, config: PipelineConfig | None = None, nside: int = 8,
                 margin_deg: float = 0.5):
        self.config = config or PipelineConfig()
        self.tiles = HEALPix(nside=nside, order="nested")
        self.margin_deg = margin_deg
        self.partitions: dict[int, SkyDecider] = {}
        self.sequence = 0
        self.next_monitor_id = 1
        self.client = None
        # Bands are numbered here, once for every partition: a partition numbering its
        # own would depend on which images reached it first.
        self.bands = BandAssigner(self.config.image.band_tolerance_hz)
        self.modulations = ModulationHistory(self.config.calibration.modulation_images)
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
        return healpix_cells(self.tiles.nside, ra, dec)

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
                pipeline = self.client.submit(SkyDecider, self.config, actor=True).result()
            else:
                pipeline = SkyDecider(self.config)
            self.partitions[tile] = pipeline
            if self._stored is not None:
                _wait(pipeline.restore(self._tile_state(tile)))
        return pipeline

    def restore(self, state) -> None:
        """Resume from a stored run: each partition gets the sources in its tile and
        margin, their sums, the depth map and the run-state values, when it is created."""
        self.sequence = int(state.values.get("partition_sequence", 0))
        self.next_monitor_id = int(state.values.get("partition_next_monitor_id", 1))
        if "band_centres_hz" in state.values:
            self.bands.centres = [float(f) for f in json.loads(state.values["band_centres_hz"])]
        if "modulation_history" in state.values:
            self.modulations.load(json.loads(state.values["modulation_history"]))
        if not len(state.sources) and not len(state.depth):
            return
        self._stored = state
        src = state.sources
        near = self.tiles_near(src.ra, src.dec) if len(src) else []
        self._stored_near = near
        for tile in np.unique(np.concatenate(near)) if near else []:
            self._partition(int(tile))

    def _tile_state(self, tile: int) -> StoredState:
        state = self._stored
        src = state.sources
        mask = np.array([tile in t for t in self._stored_near], dtype=bool)
        ids = src.source_id[mask] if len(src) else np.zeros(0, dtype=np.int64)
        stats = state.statistics
        keep = np.isin(stats.source_id, ids) if len(stats) else np.zeros(0, dtype=bool)
        flagged = state.flagged
        if flagged is not None and len(flagged):
            flagged = flagged.rows(np.isin(flagged.source_id, ids))
        return StoredState(sources=src.rows(mask) if len(src) else src,
                           statistics=stats.rows(keep) if len(stats) else stats,
                           depth=state.depth, monitors=[], values=dict(state.values),
                           flagged=flagged)

    def state_values(self) -> dict[str, str]:
        """Run-state values to store with each image (identical in every partition)."""
        values = {"partition_sequence": str(self.sequence),
                  "partition_next_monitor_id": str(self.next_monitor_id)}
        if self.partitions:
            first = next(iter(self.partitions.values()))
            values.update(_wait(first.state_values()))
            values.pop("next_source_id", None)
        values["band_centres_hz"] = json.dumps(self.bands.centres)
        values["modulation_history"] = json.dumps(self.modulations.dump())
        return values

    def owned_source_ids(self) -> set[int]:
        """Ids of the blind sources over all partitions, each from its owner."""
        owned: set[int] = set()
        for tile, part in self.partitions.items():
            owned.update(np.asarray(_wait(part.owned_sources(self.tiles.nside, tile))).tolist())
        return owned

    def add_monitors(self, positions: Sequence[tuple[float, float, str]]
                     ) -> list[tuple[str, float, float, int]]:
        """Monitoring-list positions go to every partition whose tile or margin holds
        them, under one id (below ``ID_STRIDE``, which blind sources never use); the
        tile that owns the position reports its measurements."""
        stored = self._stored.sources if self._stored is not None else None
        known: dict[tuple[float, float], int] = {}
        if stored is not None and len(stored):
            for sid, ra, dec in zip(stored.source_id[stored.is_monitor],
                                    stored.ra[stored.is_monitor],
                                    stored.dec[stored.is_monitor], strict=True):
                known[(round(float(ra), 7), round(float(dec), 7))] = int(sid)
        added = []
        for ra, dec, name in positions:
            key = (round(ra, 7), round(dec, 7))
            source_id = known.get(key)
            if source_id is None:
                source_id = self.next_monitor_id
                if source_id >= ID_STRIDE:
                    raise ConfigError(f"more than {ID_STRIDE - 1} monitoring positions")
                self.next_monitor_id += 1
                known[key] = source_id
                added.append((name, ra, dec, source_id))
            for tile in self.tiles_near(np.array([ra]), np.array([dec]))[0]:
                _wait(self._partition(int(tile)).add_monitors(
                    [(ra, dec, name)], source_ids=[source_id]))
        return added

    def source_count(self) -> int:
        return len(self.owned_source_ids())

    def remember(self, measured: Sequence[Measured]) -> None:
        """Earlier images into the precovery buffers of the partitions they touch."""
        for m in sorted(measured, key=lambda m: (m.record.time_mjd, m.record.freq_hz)):
            if not m.record.accepted or m.extraction is None:
                continue
            m = self._with_band(m)
            none = m.extraction.sources.select(np.zeros(len(m.extraction.sources), bool))
            sub = Measured(m.record, replace(m.extraction, sources=none),
                           detection_index=np.zeros(0, dtype=np.int64))
            for tile in self._image_tiles(m.extraction.image):
                _wait(self._partition(int(tile)).remember([sub]))

    def decide(self, timestep: Sequence[Measured]) -> list[ImageResult]:
        """One timestep through every partition it touches; their owned parts merged."""
        # Frequency order: the ids a timestep's new sources get do not depend on the
        # order its bands came in.
        accepted = [i for i in frequency_order(timestep)
                    if timestep[i].record.accepted and timestep[i].extraction is not None]
        results: list[ImageResult] = [ImageResult(m.record) for m in timestep]
        if not accepted:
            return results
        timestep = list(timestep)
        for i in accepted:
            timestep[i] = self._with_band(timestep[i])
        id_bases: list[int] = []
        subsets: dict[int, list[tuple[int, Measured]]] = {}
        for k, i in enumerate(accepted):
            self.sequence += 1
            id_bases.append(self.sequence * ID_STRIDE)
            ex = timestep[i].extraction
            cat = ex.sources
            near = self.tiles_near(cat.ra_deg, cat.dec_deg) if len(cat) else []
            for tile in self._image_tiles(ex.image):
                mine = np.array([tile in t for t in near], dtype=bool)
                sub = Measured(timestep[i].record, replace(ex, sources=cat.select(mine)),
                               detection_index=np.flatnonzero(mine))
                subsets.setdefault(int(tile), []).append((k, sub))
        calibrations = self._calibrations(timestep, accepted, subsets)
        pending = []
        for tile, subs in sorted(subsets.items()):
            decided = self._partition(tile).decide([sub for _, sub in subs],
                                                   [id_bases[k] for k, _ in subs],
                                                   [calibrations[k] for k, _ in subs])
            pending.append((tile, [k for k, _ in subs], decided))
        # On a cluster the partitions work at once; results are collected in tile order.
        per_image: dict[int, list[tuple[int, ImageResult]]] = {}
        for tile, ks, decided in pending:
            for k, result in zip(ks, _wait(decided), strict=True):
                per_image.setdefault(k, []).append((tile, result))
        for k, i in enumerate(accepted):
            results[i] = self._merge(timestep[i], per_image.get(k, []))
            if results[i].image.accepted:
                self.modulations.add(results[i].image.band, calibrations[k])
        return results

    def _with_band(self, measured: Measured) -> Measured:
        record = measured.record
        return replace(measured, record=replace(record, band=self.bands.band_of(record.freq_hz)))

    def _calibrations(self, timestep: Sequence[Measured], accepted: list[int],
                      subsets: dict[int, list[tuple[int, Measured]]]) -> list[Calibration]:
        """Each image's calibration from the reference candidates of every partition
        (each giving those it owns), fitted on the whole catalogue: the calibration one
        sky model would find."""
        cfg = self.config.calibration
        wanted: dict[int, list] = {k: [] for k in range(len(accepted))}
        if cfg.enabled:
            for tile, subs in sorted(subsets.items()):
                part = self._partition(tile)
                for k, sub in subs:
                    wanted[k].append((tile, part.references(sub)))
        out = []
        for k, i in enumerate(accepted):
            record, ex = timestep[i].record, timestep[i].extraction
            if not cfg.enabled:
                out.append(Calibration.identity(record.centre_ra, record.centre_dec))
                continue
            refs = []
            for tile, found in wanted[k]:
                found = _wait(found)
                refs.append(found.rows(self.tile_of(found.ra, found.dec) == tile)
                            if cfg.reference_catalogue == "" else found)
                if cfg.reference_catalogue:
                    break  # the same catalogue in every partition
            cal = fit_calibration(concat(References, refs), ex.sources,
                                  ex.image.beam.bmaj_deg, record.centre_ra, record.centre_dec,
                                  cfg)
            out.append(self.modulations.pooled(record.band, cal))
        return out

    def _merge(self, measured: Measured, parts) -> ImageResult:
        record = parts[0][1].image if parts else measured.record
        if not record.accepted:
            return ImageResult(record)
        owned = [(tile, result) for tile, result in parts if result.image.accepted]
        pieces = {"measurements": [], "sources": [], "statistics": [], "candidates": [],
                  "depth": [], "forks": [], "precovery": [], "stamps": []}
        for tile, result in owned:
            src = result.sources
            own_src = self.tile_of(src.ra, src.dec) == tile if len(src) else np.zeros(0, bool)
            mine = set(src.source_id[own_src].tolist())
            for name in ("measurements", "statistics", "candidates", "forks", "precovery",
                         "stamps"):
                cols = getattr(result, name)
                keep = np.array([s in mine for s in cols.source_id], dtype=bool)
                pieces[name].append(cols.rows(keep))
            pieces["sources"].append(src.rows(own_src))
            depth = result.depth
            if len(depth):
                lon, lat = self._depth_cells(measured).healpix_to_lonlat(depth.cell)
                keep = self.tile_of(lon.to_value(u.deg), lat.to_value(u.deg)) == tile
                pieces["depth"].append(depth.rows(keep))
        merged = {name: concat(cls, pieces[name]) for name, cls in (
            ("measurements", Measurements), ("sources", SourceStates),
            ("statistics", BandStatistics), ("candidates", Candidates),
            ("depth", DepthUpdates), ("forks", Forks), ("precovery", PrecoveryPoints),
            ("stamps", Stamps))}
        record = replace(record, n_blind=len(measured.extraction.sources),
                         n_forced=int((merged["measurements"].kind == 1).sum()),
                         n_monitor=int((merged["measurements"].kind == 2).sum()))
        return ImageResult(image=record, **merged)


    def _depth_cells(self, measured: Measured) -> HEALPix:
        """The partitions' depth-map grid (the same in all, set by the first image)."""
        if self._depth_healpix is None:
            ns = self.config.new_source
            nside = ns.depth_nside or nside_for_beam(measured.extraction.image.beam.bmaj_deg,
                                                     ns.depth_cell_beams)
            self._depth_healpix = HEALPix(nside=nside, order="nested")
        return self._depth_healpix


def _wait(value):
    """The value of a Dask actor call, or the value itself in process."""
    return value.result() if hasattr(value, "result") else value
