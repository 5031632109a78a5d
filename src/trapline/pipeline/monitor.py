"""The monitoring list: user positions measured in every image."""

from __future__ import annotations

import csv
from pathlib import Path

from trapline.errors import ConfigError
from trapline.pipeline.config import ForcedSection
from trapline.positions import PositionError, parse_angle, parse_position


def monitor_positions(forced: ForcedSection) -> list[tuple[float, float, str]]:
    """(ra, dec, name) of the configured monitoring list: the ``monitor`` option and the
    CSV file ``monitor_file`` (columns ra, dec and optionally name; degrees)."""
    out = []
    for entry in forced.monitor:
        try:  # degrees, sexagesimal text or one position text (trapline.positions)
            if isinstance(entry, str):
                (ra, dec), name = parse_position(entry), entry
            else:
                ra, dec = parse_angle(entry[0], "ra"), parse_angle(entry[1], "dec")
                name = str(entry[2]) if len(entry) > 2 else f"monitor {ra:.5f} {dec:+.5f}"
        except PositionError as exc:
            raise ConfigError(f"[forced] monitor: {exc}") from exc
        out.append((ra, dec, name))
    if forced.monitor_file:
        path = Path(forced.monitor_file)
        try:
            with path.open(newline="") as fh:
                for i, row in enumerate(csv.DictReader(fh)):
                    try:
                        ra, dec = float(row["ra"]), float(row["dec"])
                    except (KeyError, TypeError, ValueError) as exc:
                        raise ConfigError(
                            f"{path}: row {i + 2} needs numeric ra and dec columns") from exc
                    out.append((ra, dec, row.get("name") or f"monitor {ra:.5f} {dec:+.5f}"))
        except FileNotFoundError as exc:
            raise ConfigError(f"[forced] monitor_file {path} not found") from exc
    for ra, dec, _ in out:
        if not (0 <= ra < 360 and -90 <= dec <= 90):
            raise ConfigError(f"monitoring position ({ra}, {dec}) is not a valid RA/Dec")
    return out
