"""Input folders as found in the wild: symlink loops are skipped with a warning (the run
goes on), gzip- and tile-compressed FITS files are found and read like plain ones."""

from __future__ import annotations

import gzip
import logging
import os
import shutil

import pandas as pd
import pytest
from astropy.io import fits

import trapline.api
from trapline.cli import main
from trapline.io.fits import read_fits
from trapline.pipeline.inputs import find_images, header_time_freq
from trapline.simulate import SimulationConfig, write_series

SIM = SimulationConfig(seed=5, epochs=3, bands=2, size=96, n_steady=6, n_variable=0,
                       n_transient=0, n_fading=0)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(SIM, tmp_path_factory.mktemp("plain"))


def run(inputs: list[str], db: str) -> int:
    return main(["run", *inputs, "--db", db, "--workers", "1", "--no-progress"])


def catalogue(db: str) -> dict[str, pd.DataFrame]:
    """What a run found, without file names, the keys made from them, and times of
    processing."""
    with trapline.api.open(db) as r:
        return {
            "images": r.images().drop(columns=["path", "image_key", "processed_at"])
            .sort_values("image_id"),
            "sources": r.sources().sort_values("source_id"),
            "measurements": r.measurements().sort_values("measurement_id"),
            "variability": r.variability().sort_values(["source_id", "band"]),
        }


def test_symlink_loops_are_skipped_with_a_warning_and_the_run_goes_on(series, tmp_path,
                                                                       capsys, caplog):
    folder = tmp_path / "images"
    shutil.copytree(series.out_dir, folder)
    os.symlink("loop.fits", folder / "loop.fits")  # itself
    os.symlink("pong.fits", folder / "ping.fits")  # each other
    os.symlink("ping.fits", folder / "pong.fits")
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")  # a folder cycle
    good = sorted(str(p) for p in folder.glob("epoch*.fits"))
    expanded = sorted(str(p) for p in folder.glob("*.fits"))  # as a shell expands *.fits
    for inputs in ([str(folder)], expanded):
        db = str(tmp_path / f"run{len(inputs)}.sqlite")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="trapline"):
            assert run(inputs, db) == 0
            assert run(inputs, db) == 0  # and every rerun likewise
        warnings = [r.getMessage() for r in caplog.records if "symlink loop" in r.getMessage()]
        assert sorted(set(warnings)) == sorted(
            f"skipping {folder / n}: symlink loop" for n in ("loop.fits", "ping.fits", "pong.fits")
        )
        assert len(warnings) == 6  # once per name and run
        out = capsys.readouterr().out
        assert f"{len(good)} accepted, 0 rejected, 0 already stored" in out
        assert f"0 accepted, 0 rejected, {len(good)} already stored" in out
        with trapline.api.open(db) as r:
            assert sorted(r.images()["path"]) == good


def gzipped(src, dest) -> None:
    with open(src, "rb") as f, gzip.open(dest, "wb") as g:
        shutil.copyfileobj(f, g)


def tile_compressed(src, dest) -> None:
    """fpack-style: an empty primary HDU, the image in a CompImageHDU. GZIP_2 without
    quantisation (quantize_level 0) is lossless for float32 pixels."""
    with fits.open(src) as hdul:
        comp = fits.CompImageHDU(hdul[0].data, hdul[0].header, compression_type="GZIP_2",
                                 quantize_level=0)
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(dest)


@pytest.mark.parametrize("suffix, write", [(".fits.gz", gzipped), (".fits.fz", tile_compressed)])
def test_compressed_fits_give_the_same_catalogue(series, tmp_path, suffix, write):
    folder = tmp_path / "compressed"
    folder.mkdir()
    for path in series.images:
        write(path, folder / (path.stem + suffix))
    assert len(find_images([str(folder)])) == len(series.images)
    first, copy = series.images[0], folder / (series.images[0].stem + suffix)
    assert header_time_freq(str(copy)) == header_time_freq(str(first))  # time order
    assert (read_fits(copy).data == read_fits(first).data).all()  # lossless
    plain_db, packed_db = str(tmp_path / "plain.sqlite"), str(tmp_path / "packed.sqlite")
    assert run([str(series.out_dir)], plain_db) == 0
    assert run([str(folder)], packed_db) == 0
    plain, packed = catalogue(plain_db), catalogue(packed_db)
    assert len(plain["measurements"]) > 0
    for name in plain:
        pd.testing.assert_frame_equal(plain[name], packed[name])
