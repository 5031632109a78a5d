"""Alerts as one human line (console, chat, e-mail subject), with the link to the
source's page on the web interface."""

from __future__ import annotations

import math

from trapline.alerts.record import Alert, iso_time

__all__ = ["alert_line", "sexagesimal", "source_url"]


def _dms(ticks: int, per_second: int) -> str:
    """``dd:mm:ss.s`` of a whole number of ``1/per_second`` seconds."""
    seconds, fraction = divmod(ticks, per_second)
    digits = len(str(per_second)) - 1
    return (f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            f".{fraction:0{digits}d}")


def sexagesimal(ra_deg: float, dec_deg: float) -> str:
    """``hh:mm:ss.ss +dd:mm:ss.s`` of a position in degrees (rounded once, so 23:59:59.999
    is 00:00:00.00, never 24:00:00.00)."""
    ra_ticks = round(ra_deg / 15.0 * 3600 * 100) % (24 * 3600 * 100)
    dec_ticks = round(abs(dec_deg) * 3600 * 10)
    sign = "-" if dec_deg < 0 and dec_ticks else "+"
    return f"{_dms(ra_ticks, 100)} {sign}{_dms(dec_ticks, 10)}"


def source_url(base_url: str, source_id: int) -> str:
    """The source's page (``/sources/ID`` of ``trapline serve``); '' without a server."""
    return f"{base_url.rstrip('/')}/sources/{int(source_id)}" if base_url else ""


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "n/a"


def alert_line(alert: Alert, base_url: str = "") -> str:
    """One line: image time (UTC), kind, level, source id, RA/Dec (deg and
    sexagesimal), band and frequency (MHz), flux (Jy), significance, and the source's
    page when ``base_url`` (the web server) is given."""
    line = (f"{iso_time(alert.time_mjd)}  {alert.kind.upper():<8} {alert.level:<9} "
            f"source {alert.source_id}  RA {alert.ra:.5f} Dec {alert.dec:+.5f} "
            f"({sexagesimal(alert.ra, alert.dec)})  band {alert.band} "
            f"{alert.freq_hz / 1e6:.3f} MHz  flux {_number(alert.flux, '.4g')} Jy  "
            f"significance {_number(alert.significance, '.1f')}")
    url = source_url(base_url, alert.source_id)
    return f"{line}  {url}" if url else line
