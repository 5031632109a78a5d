"""The Alert record: a transient candidate with its position, reason and recent
lightcurve, as published on the ``alerts`` channel and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.time import Time

from trapline.channels import codec
from trapline.records import Columns

__all__ = ["Alert", "LightcurvePoints", "iso_time"]


def iso_time(mjd: float) -> str:
    """ISO 8601 UTC time of an MJD (milliseconds)."""
    return Time(mjd, format="mjd", scale="utc").isot


@codec.register
@dataclass
class LightcurvePoints(Columns):
    """Recent lightcurve points, oldest first. ``kind``: 'blind', 'forced', 'monitor' or
    'bin' (a compacted time bin, ``resolution_s`` > 0). Fluxes Jy/beam (peak), Jy (int)."""

    time_mjd: np.ndarray
    band: np.ndarray
    kind: np.ndarray
    peak_flux: np.ndarray
    peak_flux_err: np.ndarray
    int_flux: np.ndarray
    int_flux_err: np.ndarray
    resolution_s: np.ndarray

    @classmethod
    def empty(cls) -> LightcurvePoints:
        values = {name: np.zeros(0) for name in cls.names()}
        values["band"] = np.zeros(0, dtype=np.int64)
        values["kind"] = np.zeros(0, dtype=object)
        return cls(**values)


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@codec.register
@dataclass
class Alert:
    """One transient candidate worth telling about.

    ``alert_id`` is stable for a given image, source and kind, so an alert published
    again after a replay carries the same id (receivers can drop duplicates). Angles
    deg (errors as arcs on the sky), time MJD UTC, fluxes Jy, frequency Hz. The reason
    is ``kind`` ('new' or 'variable'), ``level`` and ``significance`` (see
    :class:`trapline.records.Candidates`)."""

    alert_id: str
    source_id: int
    ra: float
    dec: float
    ra_err: float
    dec_err: float
    time_mjd: float
    band: int
    freq_hz: float
    image_key: str
    kind: str
    level: str
    significance: float
    flux: float
    limit: float
    lightcurve: LightcurvePoints = field(default_factory=LightcurvePoints.empty)

    @property
    def position_error(self) -> float:
        """Radius of the position error (deg): the larger of the two axes."""
        return max(float(self.ra_err), float(self.dec_err))

    def to_dict(self) -> dict[str, Any]:
        """The alert as plain JSON-able data: reason grouped, lightcurve as points."""
        lc = self.lightcurve
        points = [
            {"time": iso_time(float(t)), "time_mjd": float(t), "band": int(b), "kind": str(k),
             "peak_flux": _json_float(pf), "peak_flux_err": _json_float(pfe),
             "int_flux": _json_float(f), "int_flux_err": _json_float(fe),
             "resolution_s": float(r)}
            for t, b, k, pf, pfe, f, fe, r in zip(
                lc.time_mjd, lc.band, lc.kind, lc.peak_flux, lc.peak_flux_err, lc.int_flux,
                lc.int_flux_err, lc.resolution_s, strict=True)]
        return {
            "alert_id": self.alert_id,
            "source_id": int(self.source_id),
            "position": {"ra": float(self.ra), "dec": float(self.dec),
                         "ra_err": float(self.ra_err), "dec_err": float(self.dec_err)},
            "time": iso_time(float(self.time_mjd)),
            "time_mjd": float(self.time_mjd),
            "band": int(self.band),
            "freq_hz": float(self.freq_hz),
            "image_key": self.image_key,
            "reason": {"kind": self.kind, "level": self.level,
                       "significance": _json_float(self.significance),
                       "flux": _json_float(self.flux), "limit": _json_float(self.limit)},
            "lightcurve": points,
        }

    def to_json(self, **kwargs) -> str:
        """JSON text of :meth:`to_dict` (NaN written as null)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The alert of :meth:`to_dict` (nulls read back as NaN)."""
        def num(v: float | None) -> float:
            return math.nan if v is None else float(v)

        pts = data.get("lightcurve", [])
        lc = LightcurvePoints(
            time_mjd=np.array([p["time_mjd"] for p in pts], dtype=float),
            band=np.array([p["band"] for p in pts], dtype=np.int64),
            kind=np.array([p["kind"] for p in pts], dtype=object),
            **{name: np.array([num(p[name]) for p in pts], dtype=float)
               for name in ("peak_flux", "peak_flux_err", "int_flux", "int_flux_err")},
            resolution_s=np.array([p["resolution_s"] for p in pts], dtype=float),
        )
        pos, why = data["position"], data["reason"]
        return cls(alert_id=data["alert_id"], source_id=int(data["source_id"]),
                   ra=pos["ra"], dec=pos["dec"], ra_err=pos["ra_err"], dec_err=pos["dec_err"],
                   time_mjd=data["time_mjd"], band=int(data["band"]), freq_hz=data["freq_hz"],
                   image_key=data["image_key"], kind=why["kind"], level=why["level"],
                   significance=num(why["significance"]), flux=num(why["flux"]),
                   limit=num(why["limit"]), lightcurve=lc)

    @classmethod
    def from_json(cls, text: str) -> Alert:
        return cls.from_dict(json.loads(text))


