"""The table of extracted sources, with units in the column names."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd


@dataclass
class Catalogue:
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

    def __len__(self) -> int:
        return len(self.ra_deg)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def empty(cls) -> Catalogue:
        return cls(**{name: np.zeros(0) for name in cls.columns()})

    def select(self, mask: np.ndarray) -> Catalogue:
        return Catalogue(**{name: getattr(self, name)[mask] for name in self.columns()})

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame({name: np.asarray(getattr(self, name)) for name in self.columns()})
