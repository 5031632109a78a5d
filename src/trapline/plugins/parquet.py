"""The Parquet archiver: measurements of every image into a dataset partitioned by day."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trapline.alerts.record import iso_time
from trapline.channels.base import RESULTS
from trapline.plugins.base import BasePlugin
from trapline.records import KIND_NAMES, PRECOVERY, ImageResult

__all__ = ["ParquetArchiver", "measurement_table"]


def measurement_table(result: ImageResult) -> pa.Table:
    """One image's measurements with the image's key, time (MJD), band and frequency;
    ``kind`` as text ('blind', 'forced', 'monitor'), then the precovery points of its new
    sources (kind 'precovery', each with the earlier image it was measured on)."""
    m = result.measurements
    image = result.image
    p = result.precovery
    n, k = len(m), len(p)
    nan = np.full(k, np.nan)
    precovery = {"source_id": p.source_id, "kind": np.full(k, PRECOVERY), "ra": p.ra,
                 "dec": p.dec, "ra_err": nan, "dec_err": nan, "peak_flux": p.peak_flux,
                 "peak_flux_err": p.peak_flux_err, "int_flux": p.peak_flux,
                 "int_flux_err": p.peak_flux_err, "snr": p.snr, "smaj_asec": nan,
                 "smin_asec": nan, "pa_deg": nan}
    columns: dict[str, object] = {
        "image_key": pa.array([image.image_key] * n + list(p.image_key), pa.string()),
        "time_mjd": np.concatenate([np.full(n, image.time_mjd), p.time_mjd]),
        "band": np.concatenate([np.full(n, image.band), p.band]).astype(np.int32),
        "freq_hz": np.concatenate([np.full(n, image.freq_hz), p.freq_hz]),
    }
    for name, values in m.as_dict().items():
        values = np.concatenate([np.asarray(values), np.asarray(precovery[name])])
        if name == "kind":
            columns[name] = pa.array([KIND_NAMES[int(k)] for k in values], pa.string())
        elif name == "source_id":
            columns[name] = np.asarray(values, dtype=np.int64)
        else:
            columns[name] = np.asarray(values, dtype=np.float64)
    return pa.table(columns)


class ParquetArchiver(BasePlugin):
    """Writes each image's measurements to ``{directory}/day=YYYY-MM-DD/{key}.parquet``
    (key: a hash of the image_key), atomically (temporary file, then rename).

    One file per image makes a replayed message overwrite its own file, never add rows
    twice, and makes each message durable before it is acknowledged; read a day, or
    everything, with ``pyarrow.parquet.read_table(directory)`` (``day`` becomes a
    column). Rejected images and images without measurements write nothing."""

    name = "parquet"
    channels = (RESULTS,)

    def __init__(self, directory: str | os.PathLike = "trapline-parquet",
                 compression: str = "zstd"):
        self.directory = Path(directory)
        self.compression = compression
        self.files_written = 0

    def path_for(self, result: ImageResult) -> Path:
        day = iso_time(result.image.time_mjd)[:10]
        key = hashlib.sha1(result.image.image_key.encode()).hexdigest()[:20]
        return self.directory / f"day={day}" / f"{key}.parquet"

    def handle(self, record: ImageResult) -> None:
        if not len(record.measurements) or not np.isfinite(record.image.time_mjd):
            return
        path = self.path_for(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(measurement_table(record), tmp, compression=self.compression)
        os.replace(tmp, path)
        self.files_written += 1
