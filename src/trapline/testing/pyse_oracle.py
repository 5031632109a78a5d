"""Run radio-pyse (``sourcefinder``), the reference source finder, on a FITS image.

Test and benchmark helper only: radio-pyse is imported inside the functions, never at
run time of the pipeline (it takes ~25 s to import, almost all of it numba compilation).

Units and conventions of the returned tables:

* ``ra``, ``dec`` (deg); ``ra_err``, ``dec_err`` (deg) exactly as PySE gives them: the
  largest change of the RA (resp. Dec) *coordinate* when the pixel position moves by its
  1-sigma error projected on north/east. ``ra_err`` is therefore a coordinate interval;
  the east-west arc is ``ra_err * cos(dec)``.
* ``peak``, ``peak_err`` (Jy/beam); ``flux``, ``flux_err`` (Jy).
* ``smaj_asec``, ``smin_asec``: full widths at half maximum (arcsec) of the measured
  (not deconvolved) Gaussian. PySE's own ``smaj_asec``/``smin_asec`` are *semi*-axes
  (half widths at half maximum), so they are doubled here.
* ``pa_deg``: PySE's ``theta_celes``, position angle of the major axis, degrees east of
  local north, in [0, 180).
* ``snr``: PySE's ``sig``, the maximum of (image - background) / rms over the island.
* extra columns: ``x``, ``y`` PySE's 0-based pixel position (``x`` runs along FITS
  axis 1, ``y`` along axis 2) and ``error_radius_asec`` (arcsec).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "FORCED_COLUMNS", "forced_pyse", "run_pyse"]

COLUMNS = [
    "ra", "dec", "ra_err", "dec_err", "peak", "peak_err", "flux", "flux_err",
    "smaj_asec", "smin_asec", "pa_deg", "snr", "x", "y", "error_radius_asec",
]  # fmt: skip
FORCED_COLUMNS = ["ra", "dec", "peak", "peak_err", "flux", "flux_err", "snr", "ok"]

_MISSING = (
    "trapline.testing.pyse_oracle needs radio-pyse (import name 'sourcefinder'), the "
    "reference source finder used only by tests and benchmarks: "
    "pip install 'radio-pyse>=0.7' (or trapline[oracle])"
)


def _pyse() -> Any:
    """Import and return ``sourcefinder`` submodules, with a clear error if missing."""
    try:
        from sourcefinder import accessors, config
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING) from exc
    return accessors, config


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence PySE's stdout prints and header warnings (restored afterwards)."""
    log = logging.getLogger("sourcefinder")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def _image(path: str, detection: float, analysis: float, grid: int, fit: bool) -> Any:
    accessors, config = _pyse()
    conf = config.Conf(
        image=config.ImgConf(
            detection_thr=float(detection),
            analysis_thr=float(analysis),
            back_size_x=int(grid),
            back_size_y=int(grid),
            vectorized=not fit,
            deblend_nthresh=0,
        ),
        export=config.ExportSettings(pandas_df=True),
    )
    return accessors.sourcefinder_image_from_accessor(accessors.open(path), conf=conf)


def run_pyse(
    path: str, detection: float, analysis: float = 3.0, grid: int = 32, fit: bool = False
) -> pd.DataFrame:
    """Blind extraction with PySE, deblending off.

    Args:
        path: FITS image.
        detection: detection threshold D (island peak > D x local rms).
        analysis: analysis threshold A (island pixels > A x local rms).
        grid: background box size (pixels), ``back_size_x = back_size_y = grid``.
        fit: False: PySE's vectorised "tweaked moments" measurement (its default);
            True: elliptical Gaussian least-squares fit per island.

    Returns:
        One row per source in PySE's output order, columns :data:`COLUMNS`.
    """
    with _quiet():
        img = _image(path, detection, analysis, grid, fit)
        raw = img.extract()
    if not isinstance(raw, pd.DataFrame):  # pragma: no cover - pandas_df=True above
        raise TypeError(f"unexpected PySE output {type(raw)!r}")
    names = list(img.conf.export.source_params)
    if len(raw) == 0:
        raw = pd.DataFrame(columns=names, dtype=float)
    elif list(raw.columns) != names:
        # The Gaussian-fit path builds its frame from plain lists: integer column labels
        # in the order of conf.export.source_params.
        raw.columns = names
    out = pd.DataFrame(
        {
            "ra": raw["ra"],
            "dec": raw["dec"],
            "ra_err": raw["ra_err"],
            "dec_err": raw["dec_err"],
            "peak": raw["peak"],
            "peak_err": raw["peak_err"],
            "flux": raw["flux"],
            "flux_err": raw["flux_err"],
            "smaj_asec": 2.0 * raw["smaj_asec"],
            "smin_asec": 2.0 * raw["smin_asec"],
            "pa_deg": raw["theta_celes"],
            "snr": raw["sig"],
            "x": raw["x"],
            "y": raw["y"],
            "error_radius_asec": raw["error_radius"],
        }
    )
    return out.astype(np.float64).reset_index(drop=True)


def forced_pyse(
    path: str,
    ra: Sequence[float] | np.ndarray,
    dec: Sequence[float] | np.ndarray,
    grid: int = 32,
    boxsize: float | None = None,
    threshold: float | None = None,
    fixed: str = "position+shape",
) -> pd.DataFrame:
    """Forced fits with PySE's ``ImageData.fit_fixed_positions``, one position at a time.

    Args:
        path: FITS image.
        ra, dec: requested positions (deg).
        grid: background box size (pixels).
        boxsize: side (pixels) of the fitting box; default as the ``pyse`` CLI,
            ``ffbox (3) x`` the larger beam semi-axis in pixels.
        threshold: None fits every pixel in the box; a number fits only the island of
            pixels above ``threshold x rms`` that contains the position.
        fixed: ``"position+shape"`` (peak only, beam shape), or ``"position"``.

    Returns:
        One row per request, columns :data:`FORCED_COLUMNS`; ``ok`` False (and NaN values)
        where PySE dropped or could not fit the position. ``ra``/``dec`` echo the request.
        Caveat: PySE centres the box on ``int(x)`` and pins the model at ``boxsize/2``
        within it, so the model centre can be up to ~1 pixel off the requested position.
    """
    ras = np.atleast_1d(np.asarray(ra, dtype=np.float64))
    decs = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    if ras.shape != decs.shape:
        raise ValueError("ra and dec must have the same length")
    rows: list[dict[str, float | bool]] = []
    with _quiet():
        # Thresholds are irrelevant for forced fits; only the background grid matters.
        img = _image(path, 5.0, 3.0, grid, True)
        box = float(boxsize) if boxsize is not None else 3.0 * max(img.beam[0], img.beam[1])
        for r, d in zip(ras, decs, strict=True):
            row: dict[str, float | bool] = {"ra": float(r), "dec": float(d), "ok": False}
            try:
                fits = img.fit_fixed_positions([(r, d)], box, threshold=threshold, fixed=fixed)
            except (ValueError, IndexError, RuntimeError):
                fits = []
            if fits:
                det = fits[0]
                row.update(
                    peak=float(det.peak.value),
                    peak_err=float(det.peak.error),
                    flux=float(det.flux.value),
                    flux_err=float(det.flux.error),
                    snr=float(det.sig),
                    ok=True,
                )
            rows.append(row)
    out = pd.DataFrame(rows, columns=FORCED_COLUMNS)
    out["ok"] = out["ok"].astype(bool)
    return out
