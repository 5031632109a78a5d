"""Alerts: transient candidates with their recent lightcurve, as JSON and VOEvent 2.0."""

from trapline.alerts.record import Alert, LightcurvePoints, iso_time
from trapline.alerts.voevent import to_voevent

__all__ = ["Alert", "LightcurvePoints", "iso_time", "to_voevent"]
