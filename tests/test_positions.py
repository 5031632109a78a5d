"""Typed sky positions: degrees, sexagesimal and J-names, in every place a position
is typed (the parser, the configuration's monitoring list, ``extract --forced``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trapline.errors import ConfigError
from trapline.geometry import separation_deg
from trapline.pipeline.config import config_from_dict
from trapline.pipeline.monitor import monitor_positions
from trapline.positions import PositionError, jname, parse_angle, parse_position, sexagesimal


def _arcsec_apart(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Angular distance (arcsec) of two (ra, dec) positions in degrees (Vincenty: an
    arccos loses micro-arcseconds to rounding)."""
    return float(separation_deg(a[0], a[1], b[0], b[1])) * 3600


RA = st.floats(0, 360, exclude_max=True, allow_nan=False)
DEC = st.floats(-90, 90, allow_nan=False)


@given(RA, DEC, st.integers(0, 5))
def test_sexagesimal_round_trip(ra, dec, digits):
    text = sexagesimal(ra, dec, digits)
    back = parse_position(text)
    assert 0 <= back[0] < 360
    # rounding to `digits` decimals of a second: half a unit in RA (15" per s) and Dec
    tolerance = 0.5 * 10.0 ** -digits * 15 + 0.5 * 10.0 ** -max(0, digits - 1)
    assert _arcsec_apart((ra, dec), back) <= tolerance * 1.0001 + 1e-6
    assert ":60" not in text and not text.startswith("24")


@given(RA, DEC)
def test_jname_round_trip(ra, dec):
    name = jname(ra, dec, 2)
    assert name.startswith("J") and name[10] in "+-"
    assert _arcsec_apart((ra, dec), parse_position(name)) <= 0.5 * 0.01 * 15 + 0.05 + 1e-6


@given(RA, DEC)
def test_degrees_are_read_exactly(ra, dec):
    assert parse_position(f"{ra!r} {dec!r}") == (ra, dec)
    assert parse_position(f"{ra!r},{dec!r}") == (ra, dec)


@pytest.mark.parametrize("text", ["10:00:06 +30:12:00", "10h00m06s +30d12m00s",
                                  "10 00 06.0 +30 12 00", "J100006.0+301200",
                                  "j100006+301200", "150.025 30.2", "150.025, 30.2"])
def test_forms_of_one_position(text):
    ra, dec = parse_position(text)
    assert ra == pytest.approx(150.025, abs=1e-9) and dec == pytest.approx(30.2, abs=1e-9)


def test_short_jname_and_southern_angles():
    assert parse_position("J1000-3012") == pytest.approx((150.0, -30.2))
    assert parse_angle("-00:30:00", "dec") == pytest.approx(-0.5)
    assert parse_angle("23:59:59.9999", "ra") == pytest.approx(359.9999996, abs=1e-6)


@pytest.mark.parametrize("text", ["hello", "10:00:06", "150 95", "nan 3", "J1000", ""])
def test_unreadable_positions_say_which_forms_work(text):
    with pytest.raises(PositionError):
        parse_position(text)


def test_config_monitoring_list_takes_sexagesimal_and_jnames():
    config = config_from_dict({"forced": {"monitor": [
        [150.025, 30.2], ["10:00:06", "+30:12:00", "by parts"], "J100006.0+301200"]}})
    positions = monitor_positions(config.forced)
    for ra, dec, _ in positions:
        assert (ra, dec) == pytest.approx((150.025, 30.2), abs=1e-9)
    assert [p[2] for p in positions][1:] == ["by parts", "J100006.0+301200"]
    bad = config_from_dict({"forced": {"monitor": ["J99"]}})
    with pytest.raises(ConfigError, match="monitor"):
        monitor_positions(bad.forced)


def test_extract_forced_takes_sexagesimal(tmp_path, capsys):
    import json

    from trapline.cli import main
    from trapline.simulate import SimulationConfig, write_series

    series = write_series(SimulationConfig(seed=5, epochs=1, bands=1, size=128, n_steady=3,
                                           n_variable=0, n_transient=0, n_fading=0),
                          tmp_path / "s")
    path = sorted(series.out_dir.glob("*.fits"))[0]
    assert main(["extract", str(path), "--format", "json", "--forced", "150.0,30.0"]) == 0
    by_degrees = [r for r in json.loads(capsys.readouterr().out) if r["kind"] == "forced"]
    text = sexagesimal(150.0, 30.0, 4)
    assert main(["extract", str(path), "--format", "json", "--forced", text]) == 0
    by_text = [r for r in json.loads(capsys.readouterr().out) if r["kind"] == "forced"]
    assert len(by_text) == len(by_degrees) == 1
    assert by_text[0]["ra_deg"] == pytest.approx(by_degrees[0]["ra_deg"], abs=1e-7)
    assert main(["extract", str(path), "--forced", "J99"]) == 2
    assert "cannot read the position 'J99'" in capsys.readouterr().err
