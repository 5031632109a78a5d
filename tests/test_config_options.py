"""Each pipeline option is declared once (default, type, help, check): everything that
shows or validates the configuration follows from that declaration."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trapline.cli import main
from trapline.errors import ConfigError
from trapline.options import at_least, one_of, option, options, power_of_two_or_zero
from trapline.pipeline.brightsources import BRIGHT_SOURCES
from trapline.pipeline.config import (
    SECTIONS,
    PipelineConfig,
    config_from_dict,
    defaults_toml,
    load_config,
)

ALL = [(section, f) for section, cls in SECTIONS.items() for f in options(cls)]
IDS = [f"{section}.{f.name}" for section, f in ALL]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def test_every_field_of_every_section_is_a_declared_option():
    for section, cls in SECTIONS.items():
        assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in options(cls)], section


@pytest.mark.parametrize(("section", "f"), ALL, ids=IDS)
def test_every_option_has_help_and_a_default_that_passes_its_check(section, f):
    assert f.metadata["help"].strip()
    check = f.metadata["check"]
    if check is not None:
        assert check(_default(f)) is None
    # The default also goes through the whole validation, given explicitly.
    assert getattr(getattr(config_from_dict({section: {f.name: _default(f)}}), section),
                   f.name) == _default(f)


def test_list_defaults_are_not_shared_between_instances():
    a, b = PipelineConfig(), PipelineConfig()
    a.lightcurves.tiers.append([86400.0, 0.0])
    a.image.beam_deg.append(1.0)
    assert b.lightcurves.tiers == [[0.0, 86400.0], [60.0, 2592000.0], [3600.0, 0.0]]
    assert b.image.beam_deg == []


def test_defaults_toml_parses_back_to_the_defaults():
    parsed = tomllib.loads(defaults_toml())
    expected = PipelineConfig().to_dict()
    del expected["plugins"]  # commented out in the document
    assert parsed == expected
    assert config_from_dict(parsed) == PipelineConfig()
    # Each option's help is the comment line just above it.
    lines = defaults_toml().splitlines()
    for section, f in ALL:
        at = lines.index(f"[{section}]")
        line = next(i for i in range(at, len(lines)) if lines[i].startswith(f"{f.name} = "))
        assert lines[line - 1] == f"# {f.metadata['help']}"


# ---- random valid configurations round-trip ------------------------------------------

FLOATS = st.floats(-1e6, 1e6, allow_nan=False) | st.floats(0.0, 10.0)
LISTS = {
    "beam_deg": st.just([]) | st.lists(st.floats(1e-3, 1.0), min_size=3, max_size=3),
    "monitor": st.lists(st.lists(st.floats(0.0, 90.0), min_size=2, max_size=2)
                        | st.just("J100006.0+301200") | st.just([10.0, 20.0, "name"]),
                        max_size=3),
    "tiers": st.sampled_from([[[0.0, 0.0]], [[0.0, 3600.0], [60.0, 0.0]],
                              [[0.0, 60.0], [30.0, 120.0], [90.0, 0.0]]]),
    "bright_sources": st.lists(st.sampled_from(list(BRIGHT_SOURCES)), unique=True),
}


def _values(f: dataclasses.Field) -> st.SearchStrategy:
    """Values of an option's type that pass its check."""
    default, check = _default(f), f.metadata["check"]
    if f.metadata["choices"]:
        strategy = st.sampled_from(f.metadata["choices"])
    elif isinstance(default, bool):
        strategy = st.booleans()
    elif isinstance(default, int):
        strategy = st.integers(-10, 10**6) | st.sampled_from([2**k for k in range(11)])
    elif isinstance(default, float):
        strategy = FLOATS | st.integers(0, 100)  # TOML integers are numbers too
    elif isinstance(default, str):
        strategy = st.text(max_size=20)
    else:
        strategy = LISTS[f.name]
    return strategy.filter(lambda v: check is None or check(v) is None)


DOCUMENTS = st.fixed_dictionaries({}, optional={
    section: st.fixed_dictionaries({}, optional={f.name: _values(f) for f in options(cls)})
    for section, cls in SECTIONS.items()
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(DOCUMENTS)
def test_random_valid_configurations_round_trip(document):
    try:
        config = config_from_dict(document)
    except ConfigError as exc:
        # The rules between options: drawn independently, many pairs break them.
        assume("must not be above" not in str(exc))
        raise
    for section, values in document.items():
        for name, value in values.items():
            got = getattr(getattr(config, section), name)
            assert got == value and type(got) is type(_default(
                next(f for f in options(SECTIONS[section]) if f.name == name)))
    assert config_from_dict(config.to_dict()) == config


# ---- invalid values: one line naming [section] option --------------------------------

WRONG_TYPE = {bool: 1, int: 1.5, float: "1", str: 1, list: "x"}
OUT_OF_RANGE = {
    int: [-1, 0, 1, 3, 3000, 2**21],
    float: [-1.0, 0.0, math.nan],
    str: ["nope"],
    list: [[1.0], [5], [[60.0, 0.0]], [[0.0, 0.0], [60.0, 10.0]], [[0.0, 10.0], [45.0, 0.0]],
           [[0.0, 100.0], [60.0, 50.0], [120.0, 0.0]], [[1.0, 2.0, 3.0, 4.0]]],
}


def _one_line_error(document: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(document)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("section", "f"), ALL, ids=IDS)
def test_a_value_of_the_wrong_type_names_the_option(section, f):
    kind = type(_default(f))
    message = _one_line_error({section: {f.name: WRONG_TYPE[kind]}})
    assert message.startswith(f"[{section}] {f.name} must be ")
    assert repr(WRONG_TYPE[kind]) in message


@pytest.mark.parametrize(("section", "f"), [(s, f) for s, f in ALL if f.metadata["check"]],
                         ids=[i for i, (_, f) in zip(IDS, ALL, strict=True)
                              if f.metadata["check"]])
def test_a_value_out_of_range_names_the_option_and_what_it_must_be(section, f):
    check = f.metadata["check"]
    bad = [v for v in OUT_OF_RANGE[type(_default(f))] if check(v) is not None]
    assert bad, "no out-of-range example for this check"
    for value in bad:
        message = _one_line_error({section: {f.name: value}})
        assert message == f"[{section}] {f.name} {check(value)}"
        assert message.split()[2] in ("must", "may", "entries")


def test_messages_of_the_named_checks():
    assert _one_line_error({"extraction": {"detection_sigma": 0}}) == (
        "[extraction] detection_sigma must be > 0")
    assert _one_line_error({"extraction": {"grid": 3}}) == (
        "[extraction] grid must be at least 4 pixels")
    assert _one_line_error({"extraction": {"method": "psf"}}) == (
        "[extraction] method must be 'moments' or 'fit'")
    assert _one_line_error({"run": {"partition_nside": 48}}) == (
        "[run] partition_nside must be 0 or a power of two up to 1024")
    assert _one_line_error({"extraction": {"analysis_sigma": 9.0}}) == (
        "[extraction] analysis_sigma must not be above detection_sigma")
    assert one_of("a", "b", "c")("d") == "must be 'a', 'b' or 'c'"
    assert at_least(2)(1) == "must be at least 2" and at_least(2)(2) is None
    assert power_of_two_or_zero(8)(16) and power_of_two_or_zero(8)(-4)
    assert power_of_two_or_zero(8)(0) is None and power_of_two_or_zero(8)(8) is None


def test_one_line_declares_an_option():
    """A section with one new option: its help and default are in the defaults document."""

    @dataclasses.dataclass
    class Extra:
        depth: int = option(3, "levels of the thing", check=at_least(1))

    SECTIONS["extra"] = Extra
    try:
        assert "[extra]\n# levels of the thing\ndepth = 3\n" in defaults_toml()
    finally:
        del SECTIONS["extra"]


def test_config_check_command_reports_a_bad_option_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[association]\nde_ruiter_radius = -2\n")
    assert main(["config", "--check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("trapline config: error: [association] de_ruiter_radius must be > 0")
    path.write_text("[run]\nworkers = 2\n")
    assert main(["config", "--check", str(path)]) == 0
    assert load_config(path).run.workers == 2


# ---- the same declarations drive the simulate and listen flags ------------------------

def _parser(command):
    import argparse

    parser = argparse.ArgumentParser()
    command.configure(parser)
    return parser


@pytest.mark.parametrize("cls", ["SimulationConfig", "StreamConfig"])
def test_settings_have_help_and_defaults_that_pass_their_checks(cls):
    from trapline.simulate import SimulationConfig
    from trapline.stream import StreamConfig

    cls = {"SimulationConfig": SimulationConfig, "StreamConfig": StreamConfig}[cls]
    declared = options(cls)
    assert len(declared) >= 7
    for f in declared:
        assert f.metadata["help"].strip(), f.name
        value = _default(f)
        assert f.metadata["check"] is None or value is None or f.metadata["check"](value) is None


def test_simulate_flags_come_from_the_settings():
    from trapline.commands import simulate
    from trapline.simulate import SimulationConfig
    from trapline.simulate.config import EFFECTS, OBSERVATION, SOURCES

    parser = _parser(simulate)
    assert simulate.config_from_args(parser.parse_args([])) == SimulationConfig()
    config = simulate.config_from_args(parser.parse_args(
        ["out", "--freq-mhz", "60", "--beam-arcsec", "20", "10", "5", "--iono-ref-mhz", "50",
         "--sidelobe-radii-beams", "2", "4", "--rms", "0.01", "--allsky",
         "--transient-start", "2", "--start", "2026-02-01T00:00:00"]))
    assert (config.freq_hz, config.beam_arcsec, config.iono_ref_freq_hz) == (
        60e6, (20.0, 10.0, 5.0), 50e6)
    assert (config.sidelobe_radii_beams, config.rms_jy, config.allsky) == ((2.0, 4.0), 0.01, True)
    assert (config.transient_start_epoch, config.start_time) == (2, "2026-02-01T00:00:00")
    text = parser.format_help()
    flagged = [f for f in options(SimulationConfig)
               if f.metadata["group"] in (OBSERVATION, SOURCES, EFFECTS)]
    assert len(flagged) == 36
    for f in flagged:
        assert "--" + (f.metadata["flag"] or f.name.replace("_", "-")) in text
    assert "centre frequency; bands are spread evenly around it (default 150.0)" in " ".join(
        text.split())


def test_bad_settings_name_the_option_in_one_line(tmp_path, capsys):
    from trapline.stream import StreamConfig

    with pytest.raises(ConfigError, match=r"^stream\.max_queue must be at least 1$"):
        StreamConfig(max_queue=0)
    with pytest.raises(ConfigError, match=r"^stream\.idle_timeout_s must be >= 0$"):
        StreamConfig(idle_timeout_s=-1.0)
    for argv, message in (
        (["--dec", "91"], "simulation option dec_deg: must be in [-90, 90]"),
        (["--start", "yesterday"],
         "simulation option start_time: must be an ISO time such as 2026-01-01T00:00:00"),
        (["--beam-arcsec", "20", "0", "5"],
         "simulation option beam_arcsec: must be (major, minor, pa) with major, minor > 0"),
    ):
        assert main(["simulate", str(tmp_path), *argv]) == 2
        assert capsys.readouterr().err == f"trapline simulate: error: {message}\n"
    assert not list(tmp_path.iterdir())
