"""A celestial WCS as FITS header text, and back, parsed once per process and pointing.

Images cross process boundaries (measuring workers, Dask) carrying their WCS. Pickling
an astropy WCS writes and re-parses a FITS header each time (about 3 ms an image); as
text it is written once per WCS object and parsed once per distinct text, which every
image of one pointing shares: time cards (DATE-OBS, MJD-OBS, ...) and spectral ones
(RESTFRQ, ...) are left out, since the image keeps its own time and frequency and only
the pixel <-> sky mapping is used.
"""

from __future__ import annotations

import re
import warnings

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

_TIME_CARDS = re.compile(r"^(DATE|MJD|TSTART|TSTOP|TIMESYS|TIMEUNIT|TREFPOS|TREFDIR|"
                         r"PLEPHEM|XPOSURE|TELAPSE|JEPOCH|BEPOCH|RESTFR|RESTWAV|SPECSYS|SSYSOBS|VELOSYS)")
_DISTORTION_TABLES = ("cpdis1", "cpdis2", "det2im1", "det2im2")
_PARSED: dict[str, WCS] = {}
_MAX_PARSED = 32


def wcs_to_text(wcs: WCS) -> str | None:
    """The WCS as header text without time cards; None if a header cannot hold it
    (lookup-table distortions: pickle the WCS itself)."""
    text = getattr(wcs, "_trapline_text", None)
    if text is not None:
        return text
    if any(getattr(wcs, name, None) is not None for name in _DISTORTION_TABLES):
        return None
    header = wcs.to_header(relax=True)
    for key in [k for k in header if _TIME_CARDS.match(k)]:
        del header[key]
    text = header.tostring()
    wcs._trapline_text = text
    return text


def wcs_from_text(text: str) -> WCS:
    """The WCS of ``text``, shared by every caller with the same text (treat it as
    read-only, as the pipeline does)."""
    wcs = _PARSED.get(text)
    if wcs is None:
        with warnings.catch_warnings():
            # Cards astropy normalised when the image was read ("obsfix"), again.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(fits.Header.fromstring(text))
        wcs._trapline_text = text
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.pop(next(iter(_PARSED)))  # the oldest pointing
        _PARSED[text] = wcs
    return wcs
