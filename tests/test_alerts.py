"""Alerts: JSON round trip, and VOEvent 2.0 packets valid against the IVOA schema
(the XSD shipped by voevent-parse; nothing is downloaded)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from channels_data import simulated_results

from trapline.alerts import Alert, LightcurvePoints, to_voevent
from trapline.plugins.alerter import make_alerts

etree = pytest.importorskip("lxml.etree")
definitions = pytest.importorskip("voeventparse.definitions")
SCHEMA = etree.XMLSchema(etree.fromstring(definitions.v2_0_schema_str))
NS = {"voe": "http://www.ivoa.net/xml/VOEvent/v2.0"}


def all_alerts() -> list[Alert]:
    history: dict[int, list] = {}
    alerts = []
    for result, _ in simulated_results():
        alerts += make_alerts(result, history, points=10)
        m = result.measurements
        for i in range(len(m)):
            history.setdefault(int(m.source_id[i]), []).append((
                result.image.time_mjd, result.image.band, "blind", float(m.peak_flux[i]),
                float(m.peak_flux_err[i]), float(m.int_flux[i]), float(m.int_flux_err[i]), 0.0))
    return alerts


def odd_alert() -> Alert:
    lc = LightcurvePoints(time_mjd=np.array([60000.0, 60000.1]), band=np.array([0, 1]),
                          kind=np.array(["bin", "forced"], dtype=object),
                          peak_flux=np.array([0.1, np.nan]), peak_flux_err=np.array([0.01, 0.02]),
                          int_flux=np.array([0.1, -0.01]), int_flux_err=np.array([0.01, np.inf]),
                          resolution_s=np.array([60.0, 0.0]))
    return Alert("abc-3-new", 3, 359.99, -89.5, 1e-4, 3e-4, 60000.1, 1, 6.0e7, "key <&>",
                 "new", "possible", float("nan"), 0.5, float("inf"), lc)


def test_alerts_of_the_simulated_series():
    alerts = all_alerts()
    n = sum(int(np.isin(r.candidates.kind, ["new", "variable"]).sum())
            for r, _ in simulated_results())
    assert len(alerts) == n > 0
    for alert in alerts:
        assert alert.kind in ("new", "variable") and len(alert.lightcurve) >= 1
        assert np.isfinite([alert.ra, alert.dec, alert.ra_err, alert.dec_err]).all()


def test_new_source_alerts_carry_their_precovery_points():
    """A new source's alert shows its lightcurve before the detection: forced fits on
    the earlier images of its band and of the others, as kind 'precovery'."""
    new = [a for a in all_alerts() if a.kind == "new"]
    assert new
    for alert in new:
        lc = alert.lightcurve
        before = lc.time_mjd < alert.time_mjd
        assert before.any() and set(lc.kind[before]) == {"precovery"}
        assert alert.band in set(lc.band[before]) and set(lc.band[before]) == set(lc.band)


def test_json_round_trip():
    for alert in [*all_alerts(), odd_alert()]:
        text = alert.to_json()
        data = json.loads(text)  # strict JSON: NaN written as null
        assert "NaN" not in text and "Infinity" not in text
        assert set(data) >= {"source_id", "position", "reason", "lightcurve", "time"}
        assert data["reason"]["kind"] == alert.kind
        back = Alert.from_json(text)
        assert back.alert_id == alert.alert_id and back.source_id == alert.source_id
        assert len(back.lightcurve) == len(alert.lightcurve)
        np.testing.assert_array_equal(back.lightcurve.time_mjd, alert.lightcurve.time_mjd)
        finite = np.isfinite(alert.lightcurve.int_flux_err)
        np.testing.assert_array_equal(back.lightcurve.int_flux_err[finite],
                                      alert.lightcurve.int_flux_err[finite])


def test_voevents_are_valid_against_the_ivoa_schema():
    for alert in [*all_alerts(), odd_alert()]:
        xml = to_voevent(alert, authority="trapline.example.org", role="test")
        doc = etree.fromstring(xml.encode())
        SCHEMA.assertValid(doc)
        assert doc.get("ivorn") == f"ivo://trapline.example.org/trapline#{alert.alert_id}"


def test_voevent_content():
    alert = all_alerts()[0]
    made = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    doc = etree.fromstring(to_voevent(alert, date=made).encode())
    assert doc.get("role") == "observation" and doc.get("version") == "2.0"
    assert doc.findtext("Who/Date") == "2025-01-02T03:04:05"
    params = {p.get("name"): p.get("value") for p in doc.iterfind("What/Param")}
    assert int(params["source_id"]) == alert.source_id
    assert float(params["flux"]) == pytest.approx(alert.flux)
    assert float(params["significance"]) == pytest.approx(alert.significance)
    assert params["kind"] == alert.kind
    pos = doc.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/Position2D")
    assert float(pos.findtext("Value2/C1")) == pytest.approx(alert.ra)
    assert float(pos.findtext("Value2/C2")) == pytest.approx(alert.dec)
    assert float(pos.findtext("Error2Radius")) == pytest.approx(alert.position_error)
    rows = doc.findall("What/Table/Data/TR")
    assert len(rows) == len(alert.lightcurve)
    assert doc.find("Why/Inference/Concept").text.endswith("radio source")
    assert not math.isnan(float(doc.find("Why").get("importance")))
