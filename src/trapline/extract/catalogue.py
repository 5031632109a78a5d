"""The table of extracted sources, with units in the column names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trapline.records import Columns


@dataclass
class Catalogue(Columns):
    """Extracted sources; every attribute is an array with one entry per source.

    Positions and shapes are on the sky. ``ra_err`` and ``dec_err`` are 1-sigma errors
    as arcs on the sky (east-west and north-south), in degrees, as TraP stores them.
    Shapes are full widths at half maximum; ``dc_*`` are deconvolved from the beam
    (0 along an unresolved axis).
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    ra_err_deg: np.ndarray
    dec_err_deg: np.ndarray
    x_pix: np.ndarray
    y_pix: np.ndarray
    peak_jy: np.ndarray
    peak_err_jy: np.ndarray
    flux_jy: np.ndarray
    flux_err_jy: np.ndarray
    smaj_asec: np.ndarray
    smin_asec: np.ndarray
    pa_deg: np.ndarray
    smaj_err_asec: np.ndarray
    smin_err_asec: np.ndarray
    pa_err_deg: np.ndarray
    dc_smaj_asec: np.ndarray
    dc_smin_asec: np.ndarray
    dc_pa_deg: np.ndarray
    snr: np.ndarray
    rms_jy: np.ndarray
    island_pixels: np.ndarray

    @classmethod
    def columns(cls) -> list[str]:
        """The column names (:meth:`~trapline.records.Columns.names`)."""
        return cls.names()

    def select(self, mask: np.ndarray) -> Catalogue:
        """The sources where ``mask`` holds (:meth:`~trapline.records.Columns.rows`)."""
        return self.rows(mask)

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame({name: np.asarray(getattr(self, name)) for name in self.columns()})
