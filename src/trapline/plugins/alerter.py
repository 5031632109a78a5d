"""The candidate finder: turns each image's transient candidates into Alerts on the
``alerts`` channel, each with the source's position, the reason and its recent
lightcurve."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Collection

import numpy as np

from trapline import api
from trapline.alerts.record import Alert, LightcurvePoints
from trapline.channels.base import ALERTS, RESULTS
from trapline.plugins.base import BasePlugin, PluginContext
from trapline.records import KIND_NAMES, PRECOVERY, ImageResult

__all__ = ["Alerter", "make_alerts"]

log = logging.getLogger(__name__)

# A lightcurve point: time_mjd, band, kind, peak, peak_err, int, int_err, resolution_s
Point = tuple[float, int, str, float, float, float, float, float]


def _points(result: ImageResult) -> dict[int, list[Point]]:
    """This image's measurements as lightcurve points, per source, and the precovery
    points of its new sources (on earlier images: their lightcurve before detection)."""
    m, image = result.measurements, result.image
    out: dict[int, list[Point]] = {}
    for i in range(len(m)):
        out.setdefault(int(m.source_id[i]), []).append((
            float(image.time_mjd), int(image.band), KIND_NAMES.get(int(m.kind[i]), "?"),
            float(m.peak_flux[i]), float(m.peak_flux_err[i]), float(m.int_flux[i]),
            float(m.int_flux_err[i]), 0.0))
    p = result.precovery
    for i in range(len(p)):
        out.setdefault(int(p.source_id[i]), []).append((
            float(p.time_mjd[i]), int(p.band[i]), KIND_NAMES[PRECOVERY], float(p.peak_flux[i]),
            float(p.peak_flux_err[i]), float(p.peak_flux[i]), float(p.peak_flux_err[i]), 0.0))
    return out


def _lightcurve(points: list[Point]) -> LightcurvePoints:
    cols = list(zip(*points, strict=True)) if points else [()] * 8
    return LightcurvePoints(
        time_mjd=np.array(cols[0], dtype=float), band=np.array(cols[1], dtype=np.int64),
        kind=np.array(cols[2], dtype=object), peak_flux=np.array(cols[3], dtype=float),
        peak_flux_err=np.array(cols[4], dtype=float), int_flux=np.array(cols[5], dtype=float),
        int_flux_err=np.array(cols[6], dtype=float), resolution_s=np.array(cols[7], dtype=float))


def _key(point: tuple) -> tuple[float, int, str]:
    """Identity of a lightcurve point: time (ms), band, kind."""
    return (round(point[0] * 86400.0, 3), int(point[1]), str(point[2]))


def alert_id(image_key: str, source_id: int, kind: str) -> str:
    """Stable id of the alert for a source and kind in an image."""
    return f"{hashlib.sha1(image_key.encode()).hexdigest()[:12]}-{source_id}-{kind}"


def make_alerts(result: ImageResult, history: dict[int, list[Point]] | None = None,
                points: int = 20, kinds: Collection[str] = ("new", "variable"),
                min_significance: float = 0.0) -> list[Alert]:
    """Alerts for an image's candidates. ``history``: earlier lightcurve points per
    source (any order; points after the image's time, or of the image's own time and
    band, are ignored); the alert's lightcurve is the last ``points`` of history and
    this image's measurements, in time order."""
    c, image = result.candidates, result.image
    if not len(c):
        return []
    current = _points(result)
    src = result.sources
    src_row = {int(s): i for i, s in enumerate(src.source_id)}
    m = result.measurements
    alerts = []
    for i in range(len(c)):
        kind, level = str(c.kind[i]), str(c.level[i])
        significance = float(c.significance[i])
        if kind not in kinds or significance < min_significance:
            continue
        sid = int(c.source_id[i])
        if sid in src_row:
            r = src_row[sid]
            pos = (src.ra[r], src.dec[r], src.ra_err[r], src.dec_err[r])
        else:
            rows = np.flatnonzero(np.asarray(m.source_id) == sid)
            if not len(rows):
                log.warning("candidate source %d has no position in image %s", sid,
                            image.image_key)
                continue
            r = rows[0]
            pos = (m.ra[r], m.dec[r], m.ra_err[r], m.dec_err[r])
        # earlier points, and those of other bands at this time; this image's own
        # points come from its measurements
        now = _key((image.time_mjd, image.band, ""))[:2]
        merged = {_key(p): p for p in (history or {}).get(sid, [])
                  if p[0] <= image.time_mjd and _key(p)[:2] != now}
        merged.update({_key(p): p for p in current.get(sid, [])})
        lc = [merged[k] for k in sorted(merged)]
        lc = lc[-points:] if points else []
        alerts.append(Alert(
            alert_id=alert_id(image.image_key, sid, kind), source_id=sid,
            ra=float(pos[0]), dec=float(pos[1]), ra_err=float(pos[2]), dec_err=float(pos[3]),
            time_mjd=float(image.time_mjd), band=int(c.band[i]), freq_hz=float(image.freq_hz),
            image_key=image.image_key, kind=kind, level=level, significance=significance,
            flux=float(c.flux[i]), limit=float(c.limit[i]), lightcurve=_lightcurve(lc)))
    return alerts


class Alerter(BasePlugin):
    """Publishes an :class:`~trapline.alerts.Alert` on ``alerts`` for each candidate of
    each result (of the ``kinds`` given, at least ``min_significance``).

    The recent lightcurve (``points`` points) comes from the measurements this plug-in
    has seen (kept for up to ``max_sources`` sources, least recently measured dropped)
    and, where that holds fewer points and a database is available (``url``, or the
    host's), from ``trapline.api.open(url).lightcurve(source_id)``. A replayed result
    publishes its alerts again with the same ``alert_id``."""

    name = "alerter"
    channels = (RESULTS,)
    publishes = (ALERTS,)  # so the host adds no other alerter for the alert sinks

    def __init__(self, url: str | None = None, points: int = 20,
                 kinds: Collection[str] = ("new", "variable"), min_significance: float = 0.0,
                 use_db: bool = True, max_sources: int = 200_000):
        self.url = url
        self.points = points
        self.kinds = tuple(kinds)
        self.min_significance = min_significance
        self.use_db = use_db
        self.max_sources = max_sources
        self.history: OrderedDict[int, deque[Point]] = OrderedDict()
        self.published = 0
        self._run = None

    def start(self, context: PluginContext) -> None:
        super().start(context)
        self.url = self.url or context.db_url

    def _db_history(self, source_id: int) -> list[Point]:
        if not (self.use_db and self.url):
            return []
        try:
            if self._run is None:
                self._run = api.open(self.url)
            df = self._run.lightcurve(source_id).tail(self.points + 4)
        except Exception as exc:  # noqa: BLE001 - alerts go out without the stored history
            log.warning("no stored lightcurve for source %d: %s", source_id, exc)
            return []
        return [(float(r.time_mjd), int(r.band), str(r.kind), float(r.peak_flux),
                 float(r.peak_flux_err), float(r.int_flux), float(r.int_flux_err),
                 float(r.resolution_s)) for r in df.itertuples()]

    def handle(self, record: ImageResult) -> None:
        history: dict[int, list[Point]] = {}
        for sid in {int(s) for s in record.candidates.source_id}:
            known = list(self.history.get(sid, ()))
            if len(known) < self.points:
                known = known + self._db_history(sid)
            history[sid] = known
        alerts = make_alerts(record, history, self.points, self.kinds, self.min_significance)
        for alert in alerts:
            self.publish(ALERTS, alert)
            self.published += 1
        self._remember(record)

    def _remember(self, record: ImageResult) -> None:
        if not self.points:
            return
        for sid, pts in _points(record).items():
            ring = self.history.get(sid)
            if ring is None:
                ring = self.history[sid] = deque(maxlen=self.points)
            else:
                self.history.move_to_end(sid)
            ring.extend(pts)
        while len(self.history) > self.max_sources:
            self.history.popitem(last=False)

    def close(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None
