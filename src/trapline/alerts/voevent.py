"""Alerts as VOEvent 2.0 XML (IVOA Recommendation, 2011).

The packet has: ``Who`` (author IVORN, date), ``What`` (flux, significance, the reason,
the detection limit, frequency, and the recent lightcurve as a Table), ``WhereWhen``
(position with its error circle in FK5/UTC, geocentric, and the time of the image),
``How`` (the instrument and pipeline) and ``Why`` (the inference: new source or
variable). Written with the standard library; the tests validate it against the IVOA
schema shipped by ``voevent-parse``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from trapline.alerts.record import Alert, iso_time

__all__ = ["VOEVENT_NS", "to_voevent"]

VOEVENT_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{VOEVENT_NS} http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd"


def _f(value: float) -> str:
    """xs:float text (NaN, INF, -INF spelled as XML Schema wants)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(value)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _param(parent: ET.Element, name: str, value: str, data_type: str = "string",
           unit: str | None = None, ucd: str | None = None) -> None:
    attrib = {"name": name, "value": value, "dataType": data_type}
    if unit:
        attrib["unit"] = unit
    if ucd:
        attrib["ucd"] = ucd
    _sub(parent, "Param", **attrib)


def to_voevent(alert: Alert, *, authority: str = "trapline.local", stream: str = "trapline",
               role: str = "observation", author: str = "Trapline transient pipeline",
               telescope: str = "radio interferometer", date: datetime | None = None) -> str:
    """The alert as a VOEvent 2.0 packet (XML text with declaration).

    The IVORN is ``ivo://{authority}/{stream}#{alert_id}``; ``role`` 'observation' or
    'test'. ``date`` (default now, UTC) is when the packet was made."""
    ET.register_namespace("voe", VOEVENT_NS)
    ET.register_namespace("xsi", XSI_NS)
    root = ET.Element(f"{{{VOEVENT_NS}}}VOEvent", {
        "version": "2.0", "role": role,
        "ivorn": f"ivo://{authority}/{stream}#{alert.alert_id}",
        f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION,
    })
    made = (date or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)

    who = _sub(root, "Who")
    _sub(who, "AuthorIVORN", f"ivo://{authority}/{stream}")
    _sub(who, "Date", made.isoformat(timespec="seconds"))
    who_author = _sub(who, "Author")
    _sub(who_author, "shortName", author)

    what = _sub(root, "What")
    _param(what, "source_id", str(int(alert.source_id)), "int")
    _param(what, "alert_id", alert.alert_id)
    _param(what, "image_key", alert.image_key)
    _param(what, "flux", _f(alert.flux), "float", "Jy", "phot.flux.density")
    _param(what, "limit", _f(alert.limit), "float", "Jy", "phot.flux.density;stat.max")
    _param(what, "significance", _f(alert.significance), "float", None, "stat.value")
    _param(what, "kind", alert.kind)
    _param(what, "level", alert.level)
    _param(what, "band", str(int(alert.band)), "int")
    _param(what, "freq", _f(alert.freq_hz), "float", "Hz", "em.freq")
    lc = alert.lightcurve
    if len(lc):
        table = _sub(what, "Table", name="lightcurve")
        _sub(table, "Description", "recent lightcurve points of the source, oldest first")
        for name, unit, dtype in (("time", None, "string"), ("band", None, "int"),
                                  ("kind", None, "string"), ("peak_flux", "Jy/beam", "float"),
                                  ("peak_flux_err", "Jy/beam", "float"),
                                  ("int_flux", "Jy", "float"), ("int_flux_err", "Jy", "float"),
                                  ("resolution", "s", "float")):
            attrib = {"name": name, "dataType": dtype}
            if unit:
                attrib["unit"] = unit
            _sub(table, "Field", **attrib)
        data = _sub(table, "Data")
        for i in range(len(lc)):
            tr = _sub(data, "TR")
            for text in (iso_time(float(lc.time_mjd[i])), str(int(lc.band[i])), str(lc.kind[i]),
                         _f(lc.peak_flux[i]), _f(lc.peak_flux_err[i]), _f(lc.int_flux[i]),
                         _f(lc.int_flux_err[i]), _f(lc.resolution_s[i])):
                _sub(tr, "TD", text)

    where = _sub(root, "WhereWhen")
    obs = _sub(where, "ObsDataLocation")
    _sub(obs, "ObservatoryLocation", id="GEOLUN")
    location = _sub(obs, "ObservationLocation")
    _sub(location, "AstroCoordSystem", id="UTC-FK5-GEO")
    coords = _sub(location, "AstroCoords", coord_system_id="UTC-FK5-GEO")
    time = _sub(coords, "Time", unit="s")
    instant = _sub(time, "TimeInstant")
    _sub(instant, "ISOTime", iso_time(float(alert.time_mjd)))
    position = _sub(coords, "Position2D", unit="deg")
    _sub(position, "Name1", "RA")
    _sub(position, "Name2", "Dec")
    value = _sub(position, "Value2")
    _sub(value, "C1", _f(alert.ra))
    _sub(value, "C2", _f(alert.dec))
    _sub(position, "Error2Radius", _f(alert.position_error))

    how = _sub(root, "How")
    _sub(how, "Description", f"{telescope}; image-plane transient search by Trapline")

    importance = 1.0 if alert.level in ("likely", "eta+v") else 0.5
    why = _sub(root, "Why", importance=_f(importance))
    probability = "0.9" if importance == 1.0 else "0.5"
    inference = _sub(why, "Inference", probability=probability)
    concept = "new radio source" if alert.kind == "new" else "variable radio source"
    _sub(inference, "Concept", concept)
    _sub(inference, "Description",
         f"{alert.kind} ({alert.level}): significance {float(alert.significance):.3g}")

    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
