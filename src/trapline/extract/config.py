"""Settings of the extraction engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractionConfig:
    """How sources are found and measured.

    Attributes:
        detection_sigma: an island must have a pixel this many local rms above the background.
        analysis_sigma: island pixels are those this many local rms above the background.
        grid: background/rms cell size, pixels.
        kappa: clipping level of the kappa-sigma statistics, in rms.
        clip_iterations: most kappa-sigma iterations per cell.
        min_cell_fraction: a cell needs this fraction of valid pixels, else neighbours fill it.
        method: ``moments`` (moments plus two least-squares steps: fast, default) or
            ``fit`` (Gaussian least squares to convergence).
        deblend: split islands holding several sources (multi-threshold, as PySE).
        deblend_levels: number of sub-thresholds between analysis level and island peak.
        deblend_min_contrast: a branch needs this fraction of the island flux to count.
        force_beam: with ``fit``, keep the shape fixed to the restoring beam.
        margin: ignore islands whose peak lies within this many pixels of the image edge.
        remove_edge_islands: ignore islands touching the image border (truncated).
        max_island_pixels: islands larger than this are skipped (and counted) as artefacts.
    """

    detection_sigma: float = 8.0
    analysis_sigma: float = 3.0
    grid: int = 32
    kappa: float = 2.0
    clip_iterations: int = 50
    min_cell_fraction: float = 0.9
    method: str = "moments"
    deblend: bool = False
    deblend_levels: int = 32
    deblend_min_contrast: float = 0.005
    force_beam: bool = False
    margin: int = 0
    remove_edge_islands: bool = True
    max_island_pixels: int = 100_000

    def __post_init__(self) -> None:
        if self.analysis_sigma <= 0 or self.detection_sigma <= 0:
            raise ValueError("detection_sigma and analysis_sigma must be positive")
        if self.analysis_sigma > self.detection_sigma:
            raise ValueError("analysis_sigma must not exceed detection_sigma")
        if self.grid < 4:
            raise ValueError("grid must be at least 4 pixels")
        if self.method not in ("moments", "fit"):
            raise ValueError("method must be 'moments' or 'fit'")
