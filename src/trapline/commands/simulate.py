"""``trapline simulate OUT_DIR``: write a simulated image series with its truth."""

from __future__ import annotations

import argparse

from trapline.options import add_flags, flag_values
from trapline.simulate import SimulationConfig, write_series
from trapline.simulate.config import EFFECTS, OBSERVATION, SOURCES
from trapline.stream import parse_address, send_series, simulated_timesteps


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir",
        nargs="?",
        metavar="OUT_DIR",
        help="directory for the FITS images (epochNNNN_bandN.fits), truth.csv, images.csv, "
        "sidelobes.csv and sources.csv; created if missing, files of the same name are "
        "overwritten",
    )
    s = parser.add_argument_group("streaming (instead of OUT_DIR; see 'trapline listen')")
    s.add_argument("--stream", metavar="HOST:PORT", help="send the images to a listener")
    s.add_argument(
        "--stream-format",
        choices=("gijs", "fits"),
        default="gijs",
        help="wire format: AARTFAAC 512-byte header or plain FITS (default gijs)",
    )
    s.add_argument(
        "--stream-cadence-s",
        type=float,
        default=None,
        metavar="S",
        help="seconds between timesteps sent (default: --cadence-s; 0: at once)",
    )
    titles = {
        OBSERVATION: "observation",
        SOURCES: "sources",
        EFFECTS: "instrument effects (all off by default; truth in truth.csv, images.csv, "
        "sidelobes.csv)",
    }
    for group, title in titles.items():
        add_flags(parser.add_argument_group(title), SimulationConfig, group)


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The :class:`SimulationConfig` the command-line options describe."""
    return SimulationConfig(**flag_values(args, SimulationConfig))


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.stream:
        host, port = parse_address(args.stream)
        cadence = config.cadence_s if args.stream_cadence_s is None else args.stream_cadence_s
        try:
            n = send_series(host, port, simulated_timesteps(config), args.stream_format, cadence)
        except OSError as exc:
            print(f"trapline simulate: error: cannot stream to {host}:{port}: {exc}")
            return 1
        print(f"simulate: sent {n} images to {host}:{port} ({args.stream_format})")
        return 0
    if not args.out_dir:
        print("trapline simulate: error: give OUT_DIR or --stream HOST:PORT")
        return 2
    files = write_series(config, args.out_dir)
    print(
        f"simulate: wrote {len(files.images)} images ({config.epochs} epoch(s) x "
        f"{config.bands} band(s), {config.size}x{config.size} px) with {files.n_sources} "
        f"sources to {files.out_dir} (truth.csv, images.csv, sidelobes.csv, sources.csv)"
    )
    return 0
