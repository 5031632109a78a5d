"""Sky positions as people type them: degrees, sexagesimal or a J-name.

One parser for every place a position is typed (cone search, the monitoring list on
the web and in the configuration, ``trapline extract --forced``):

- degrees: ``150.025 30.2`` or ``150.025, 30.2``;
- sexagesimal, RA in hours: ``10:00:06 +30:12:00``, ``10h00m06s +30d12m00s``,
  ``10 00 06.0 +30 12 00``;
- a J-name: ``J100006.0+301200`` (RA hhmmss[.s], Dec ddmmss[.s]; also ``J1000+3012``).

Angles are ICRS degrees; RA comes back in [0, 360).
"""

from __future__ import annotations

import math
import re

from trapline.errors import TraplineError

JNAME = re.compile(
    r"^J(?P<rh>\d{2})(?P<rm>\d{2})(?P<rs>\d{2}(?:\.\d*)?)?"
    r"(?P<sign>[+-])(?P<dd>\d{2})(?P<dm>\d{2})(?P<ds>\d{2}(?:\.\d*)?)?$")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
FORMS = ("degrees (150.025 30.2), sexagesimal with RA in hours (10:00:06 +30:12:00) "
         "or a J-name (J100006.0+301200)")


class PositionError(TraplineError, ValueError):
    """A typed position that cannot be read; the message says which forms work."""


def _jname(text: str) -> str | None:
    """A J-name as sexagesimal text "hh mm ss +dd mm ss", None when not a J-name."""
    m = JNAME.match(text.strip().upper().replace(" ", ""))
    if m is None:
        return None
    g = m.groupdict()
    return (f"{g['rh']} {g['rm']} {g['rs'] or '0'} "
            f"{g['sign']}{g['dd']} {g['dm']} {g['ds'] or '0'}")


def _check(ra: float, dec: float, text: str) -> tuple[float, float]:
    if not (math.isfinite(ra) and math.isfinite(dec)) or not -90 <= dec <= 90:
        raise PositionError(f"{text!r} is not a sky position (Dec within +-90 deg)")
    return ra % 360.0, dec


def parse_position(text: str) -> tuple[float, float]:
    """(ra, dec) in degrees from one typed position (any form in the module doc)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    text = str(text).strip()
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    if len(parts) == 2 and all(NUMBER.match(p) for p in parts):
        return _check(float(parts[0]), float(parts[1]), text)
    sexagesimal = _jname(text) or text.replace(",", " ")
    try:
        coord = SkyCoord(sexagesimal, unit=(u.hourangle, u.deg), frame="icrs")
    except (ValueError, TypeError) as exc:
        raise PositionError(f"cannot read the position {text!r}: give {FORMS}") from exc
    return _check(float(coord.ra.deg), float(coord.dec.deg), text)


def parse_angle(value: str | float, axis: str) -> float:
    """One coordinate in degrees: a number (degrees) or sexagesimal text (RA in hours
    for ``axis='ra'``, Dec in degrees for ``axis='dec'``)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    if isinstance(value, int | float):
        number = float(value)
    elif NUMBER.match(str(value).strip()):
        number = float(str(value).strip())
    else:
        try:
            unit = u.hourangle if axis == "ra" else u.deg
            number = float(Angle(str(value).strip(), unit=unit).deg)
        except (ValueError, TypeError) as exc:
            raise PositionError(f"cannot read the {axis.upper()} {value!r}: give degrees "
                                f"or sexagesimal ({'10:00:06' if axis == 'ra' else '+30:12:00'})"
                                ) from exc
    if not math.isfinite(number) or (axis == "dec" and not -90 <= number <= 90):
        raise PositionError(f"{value!r} is not a valid {axis.upper()}")
    return number % 360.0 if axis == "ra" else number


def _parts(value: float, digits: int) -> tuple[int, int, float]:
    """Units, minutes and seconds of ``value`` (>= 0) rounded to ``digits`` decimals of
    a second (so 59.9999 s rounds up into the next minute, not to 60.00)."""
    total = round(value * 3600.0, digits)
    units, rest = divmod(total, 3600.0)
    minutes, seconds = divmod(rest, 60.0)
    return int(units), int(minutes), round(seconds, digits)


def _fields(ra: float, dec: float, digits: int) -> tuple[tuple, str, tuple]:
    h, m, s = _parts((ra % 360.0) / 15.0, digits)
    if h >= 24:
        h -= 24
    return (h, m, s), "-" if dec < 0 else "+", _parts(abs(dec), max(0, digits - 1))


def sexagesimal(ra: float, dec: float, digits: int = 2) -> str:
    """``hh:mm:ss.ss +dd:mm:ss.s`` of (ra, dec) in degrees: RA ``digits`` decimals of a
    second of time, Dec one fewer of an arc second."""
    (h, m, s), sign, (d, dm, ds) = _fields(ra, dec, digits)
    dd = max(0, digits - 1)
    width_s, width_d = 3 + digits if digits else 2, 3 + dd if dd else 2
    return f"{h:02d}:{m:02d}:{s:0{width_s}.{digits}f} {sign}{d:02d}:{dm:02d}:{ds:0{width_d}.{dd}f}"


def jname(ra: float, dec: float, digits: int = 1) -> str:
    """The J-name ``Jhhmmss.s+ddmmss`` of (ra, dec) in degrees (RA ``digits`` decimals
    of a second, Dec one fewer)."""
    return "J" + sexagesimal(ra, dec, digits).replace(":", "").replace(" ", "")
