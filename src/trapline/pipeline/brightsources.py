"""The bright radio sources near which images are rejected (TraP's bright-source check)."""

from __future__ import annotations

# Bright sources whose sidelobes spoil a field centred near them, as TraP's bright-source
# check has them (tkp/quality/brightsource.py, J2000 positions in radians there; these
# are the same positions in degrees, matching SIMBAD's to an arc second or so).
# Name -> (display name, RA, Dec in deg ICRS); None: a solar-system body, placed by
# astropy's built-in ephemeris at the image's time.
BRIGHT_SOURCES: dict[str, tuple[str, float, float] | None] = {
    "CasA": ("Cas A", 350.85000, 58.81500),     # 23:23:24.0 +58:48:54
    "CygA": ("Cyg A", 299.86815, 40.73392),     # 19:59:28.4 +40:44:02
    "TauA": ("Tau A", 83.63321, 22.01447),      # 05:34:32.0 +22:00:52
    "VirA": ("Vir A", 187.70593, 12.39112),     # 12:30:49.4 +12:23:28
    "HerA": ("Her A", 252.78375, 4.99250),      # 16:51:08.1 +04:59:33
    "Sun": None,
    "Jupiter": None,
}
