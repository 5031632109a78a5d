"""TraP's bright-source check: images centred near the A-team, the Sun or Jupiter are
rejected with the source and its separation; all-sky images are exempt."""

from __future__ import annotations

import re

import astropy.units as u
import pytest
from astropy.coordinates import SkyCoord, get_sun
from astropy.time import Time

from trapline.errors import ConfigError
from trapline.pipeline.config import config_from_dict
from trapline.pipeline.measure import measure
from trapline.simulate import SimulationConfig, make_sky, render_image

CAS_A = SkyCoord("23h23m24s", "+58d48m54s")  # SIMBAD's Cas A, independent of the code's table


def reject_reason(quality: dict | None = None, **sim) -> str | None:
    """The reason the pipeline rejects a simulated image (None: accepted)."""
    config = SimulationConfig(seed=5, epochs=1, size=128, n_steady=5, n_variable=0,
                              n_transient=0, n_fading=0, **sim)
    image = render_image(config, make_sky(config), epoch=0, band=0)
    return measure(image, config_from_dict({"quality": quality or {}})).record.reject_reason


def test_field_near_cas_a_is_rejected_with_source_and_separation():
    centre = CAS_A.directional_offset_by(0 * u.deg, 3.2 * u.deg)
    reason = reject_reason(ra_deg=centre.ra.deg, dec_deg=centre.dec.deg)
    assert reason is not None
    match = re.fullmatch(r"bright source: Cas A ([\d.]+) deg from the field centre \(limit 10\)",
                         reason)
    assert match, reason
    assert float(match.group(1)) == pytest.approx(3.2, abs=0.05)


def test_field_far_from_every_bright_source_is_accepted():
    assert reject_reason(ra_deg=150.0, dec_deg=30.0) is None


def test_all_sky_image_holding_cas_a_is_not_rejected():
    assert reject_reason(ra_deg=CAS_A.ra.deg, dec_deg=CAS_A.dec.deg, allsky=True) is None


def test_sun_is_placed_by_the_ephemeris_at_the_image_time():
    start = "2026-03-25T12:00:00"
    sun = get_sun(Time(start, scale="utc"))  # geocentric, computed independently here
    centre = sun.directional_offset_by(90 * u.deg, 2.0 * u.deg)
    reason = reject_reason(ra_deg=centre.ra.deg, dec_deg=centre.dec.deg, start_time=start)
    match = re.fullmatch(r"bright source: Sun ([\d.]+) deg from the field centre \(limit 10\)",
                         reason or "")
    assert match, reason
    assert float(match.group(1)) == pytest.approx(2.0, abs=0.05)
    # half a year later the Sun is on the other side of the sky: the field is fine
    assert reject_reason(ra_deg=centre.ra.deg, dec_deg=centre.dec.deg,
                         start_time="2026-09-25T12:00:00") is None


def test_check_disabled_by_empty_list_or_zero_distance_and_limit_configurable():
    centre = dict(ra_deg=CAS_A.ra.deg, dec_deg=CAS_A.dec.deg - 1.0)
    assert reject_reason(**centre).startswith("bright source: Cas A 1.0 deg")
    assert reject_reason({"bright_sources": []}, **centre) is None
    assert reject_reason({"bright_source_min_deg": 0.0}, **centre) is None
    assert reject_reason({"bright_sources": ["CygA", "Sun"]}, **centre) is None
    assert reject_reason({"bright_source_min_deg": 0.5}, **centre) is None
    assert reject_reason({"bright_source_min_deg": 1.5}, **centre).endswith("(limit 1.5)")


def test_unknown_bright_source_is_a_config_error():
    with pytest.raises(ConfigError, match=r"bright_sources must name only .*: unknown \['CenA'\]"):
        config_from_dict({"quality": {"bright_sources": ["CasA", "CenA"]}})
