"""Images without an observation time are rejected with their reason, unless the
configuration gives one ([image] time_mjd); a run that rejects every image exits 1."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from astropy.io import fits
from helpers import shared

import trapline
from trapline.cli import main
from trapline.errors import ConfigError
from trapline.io import read_fits
from trapline.pipeline.config import config_from_dict, defaults_toml
from trapline.simulate import SimulationConfig, write_series

PARKES = shared("real/parkes/1904-66_SIN.fits")
NO_TIME = "no observation time: the header has no usable DATE-OBS or MJD-OBS; set " \
          "[image] time_mjd (MJD) in the configuration"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(SimulationConfig(seed=5, epochs=2, bands=1, size=128, n_steady=4,
                                         n_variable=0, n_transient=0, n_fading=0),
                        tmp_path_factory.mktemp("series"))


def without_time(source, target) -> None:
    """A copy of the FITS file ``source`` without DATE-OBS / MJD-OBS."""
    with fits.open(source) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    for key in ("DATE-OBS", "MJD-OBS", "TIME-OBS"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(data, header).writeto(target)


def run_cli(paths, tmp_path, name: str, config: str | None = None) -> tuple[int, pd.DataFrame]:
    """``trapline run`` in this process; its exit code and the stored images."""
    url = f"sqlite:///{tmp_path / name}.sqlite"
    args = ["run", *map(str, paths), "--db", url, "--no-progress", "--workers", "1"]
    if config is not None:
        (tmp_path / f"{name}.toml").write_text(config)
        args += ["--config", str(tmp_path / f"{name}.toml")]
    code = main(args)
    with trapline.open(url) as run:
        return code, run.images()


def test_an_image_without_time_is_rejected_with_its_reason(series, tmp_path):
    timeless = tmp_path / "timeless.fits"
    without_time(series.images[0], timeless)
    assert read_fits(timeless).time_mjd != read_fits(timeless).time_mjd  # NaN: no time

    code, images = run_cli([timeless], tmp_path, "alone")
    assert code == 1  # every image rejected
    (image,) = images.itertuples()
    assert not image.accepted
    assert image.reject_reason == NO_TIME

    # Next to an image with a time, the run succeeds and only the timeless one is rejected.
    code, images = run_cli([timeless, series.images[1]], tmp_path, "mixed")
    assert code == 0
    reasons = images.set_index("path").reject_reason
    assert reasons[str(timeless)] == NO_TIME
    assert pd.isna(reasons[str(series.images[1])])


def test_a_configured_time_stands_in_for_a_missing_one(series, tmp_path):
    timeless = tmp_path / "timeless.fits"
    without_time(series.images[0], timeless)
    code, images = run_cli([timeless, series.images[1]], tmp_path, "configured",
                           "[image]\ntime_mjd = 61000.25\n")
    assert code == 0
    images = images.set_index("path")
    assert images.accepted.all()
    assert images.time_mjd[str(timeless)] == 61000.25
    # A header's own time wins over the configured one.
    assert images.time_mjd[str(series.images[1])] == pytest.approx(
        read_fits(series.images[1]).time_mjd, abs=1e-9)


@pytest.mark.skipif(not PARKES.exists(), reason=f"{PARKES} not present")
def test_the_parkes_image_has_no_time_and_needs_one_configured(tmp_path):
    code, images = run_cli([PARKES], tmp_path, "parkes")
    assert code == 1
    (image,) = images.itertuples()
    assert not image.accepted and image.reject_reason == NO_TIME
    code, images = run_cli([PARKES], tmp_path, "parkes-timed", "[image]\ntime_mjd = 53005.5\n")
    assert code == 0
    (image,) = images.itertuples()
    assert image.accepted and image.time_mjd == 53005.5 and image.n_blind > 0


def test_time_option_is_declared_with_its_default_and_meaning():
    image_section = defaults_toml().split("\n[image]\n")[1].split("\n[quality]\n")[0]
    assert re.search(r"^# observation time \(MJD.*such images are rejected\ntime_mjd = 0.0$",
                     image_section, re.M)
    assert config_from_dict({"image": {"time_mjd": 60000}}).image.time_mjd == 60000.0
    with pytest.raises(ConfigError, match=r"\[image\] time_mjd must be >= 0"):
        config_from_dict({"image": {"time_mjd": -1.0}})
    with pytest.raises(ConfigError, match=r"\[image\] time_mjd must be a number"):
        config_from_dict({"image": {"time_mjd": "2026-01-01"}})
