"""``trapline simulate OUT_DIR``: write a simulated image series with its truth."""

from __future__ import annotations

import argparse

from trapline.simulate import SimulationConfig, write_series

HELP = (
    "write a simulated radio sky (FITS series, truth.csv, images.csv, sidelobes.csv, "
    "sources.csv) for tests and demos"
)

_DEFAULTS = SimulationConfig()


def configure(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
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
    g = parser.add_argument_group("observation")
    g.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    g.add_argument("--epochs", type=int, default=d.epochs, help="time steps (default %(default)s)")
    g.add_argument(
        "--bands", type=int, default=d.bands, help="frequency bands per epoch (default %(default)s)"
    )
    g.add_argument(
        "--size", type=int, default=d.size, help="image side in pixels (default %(default)s)"
    )
    g.add_argument(
        "--pixel-arcsec",
        type=float,
        default=None,
        metavar="X",
        help="pixel size in arcsec (default 10; with --allsky the size that fits the horizon)",
    )
    g.add_argument(
        "--beam-arcsec",
        type=float,
        nargs=3,
        default=None,
        metavar=("MAJ", "MIN", "PA"),
        help="restoring beam FWHM major and minor axes (arcsec) and position angle (deg east "
        "of north) (default 4 x 3 pixels at PA 30)",
    )
    g.add_argument(
        "--rms",
        type=float,
        default=d.rms_jy,
        metavar="JY",
        help="noise rms per pixel in Jy/beam (default %(default)s)",
    )
    g.add_argument(
        "--cadence-s",
        type=float,
        default=d.cadence_s,
        metavar="S",
        help="seconds between epochs, also the integration time (default %(default)s)",
    )
    g.add_argument(
        "--start",
        default=d.start_time,
        metavar="ISO",
        help="DATE-OBS of the first epoch, UTC (default %(default)s)",
    )
    g.add_argument(
        "--ra", type=float, default=d.ra_deg, help="field centre RA in deg (default %(default)s)"
    )
    g.add_argument(
        "--dec", type=float, default=d.dec_deg, help="field centre Dec in deg (default %(default)s)"
    )
    g.add_argument(
        "--freq-mhz",
        type=float,
        default=d.freq_hz / 1e6,
        metavar="MHZ",
        help="centre frequency; bands are spread evenly around it (default %(default)s)",
    )
    g.add_argument(
        "--band-spacing-mhz",
        type=float,
        default=d.band_spacing_hz / 1e6,
        metavar="MHZ",
        help="distance between band centres (default %(default)s)",
    )
    g.add_argument(
        "--allsky",
        action="store_true",
        help="AARTFAAC-like all-sky image: the horizon is a circle, NaN beyond it",
    )
    g.add_argument(
        "--drift",
        action="store_true",
        help="the centre's RA follows the sky's rotation (a zenith-pointed all-sky "
             "monitor): every epoch has its own WCS",
    )
    p = parser.add_argument_group("sources")
    p.add_argument(
        "--n-steady",
        type=int,
        default=d.n_steady,
        metavar="N",
        help="steady sources, S/N 5 to 500 log-uniform (default %(default)s)",
    )
    p.add_argument(
        "--n-variable",
        type=int,
        default=d.n_variable,
        metavar="N",
        help="variable sources, lognormal modulation (default %(default)s)",
    )
    p.add_argument(
        "--n-transient",
        type=int,
        default=d.n_transient,
        metavar="N",
        help="transients: off, then on for a few epochs at >= 10 sigma, then off "
        "(default %(default)s)",
    )
    p.add_argument(
        "--n-fading",
        type=int,
        default=d.n_fading,
        metavar="N",
        help="fading sources, bright at the start and decaying (default %(default)s)",
    )
    p.add_argument(
        "--modulation-index",
        type=float,
        default=d.modulation_index,
        metavar="M",
        help="std/mean of the variable sources' flux (default %(default)s)",
    )
    p.add_argument(
        "--transient-start",
        type=int,
        default=None,
        metavar="EPOCH",
        help="epoch all transients turn on (default random, after the first epoch)",
    )
    p.add_argument(
        "--transient-duration",
        type=int,
        default=None,
        metavar="N",
        help="epochs transients stay on (default random, 1 to 3)",
    )
    p.add_argument(
        "--spectral-index",
        type=float,
        default=d.spectral_index,
        metavar="ALPHA",
        help="mean spectral index, S ~ freq**alpha (default %(default)s: flat)",
    )
    p.add_argument(
        "--spectral-index-scatter",
        type=float,
        default=d.spectral_index_scatter,
        metavar="X",
        help="per-source scatter of the spectral index (default %(default)s)",
    )
    p.add_argument(
        "--min-separation-beams",
        type=float,
        default=d.min_separation_beams,
        metavar="X",
        help="minimum source separation in beam FWHMs (default %(default)s)",
    )
    p.add_argument(
        "--jitter-arcsec",
        type=float,
        default=d.jitter_arcsec,
        metavar="X",
        help="rms per-epoch random position offset of each source; truth.csv has the "
        "offset position (default %(default)s)",
    )

    e = parser.add_argument_group(
        "instrument effects (all off by default; truth in truth.csv, images.csv, sidelobes.csv)"
    )
    e.add_argument(
        "--gain-scatter",
        type=float,
        default=d.gain_scatter,
        metavar="X",
        help="fractional rms of a per-image flux-scale error: the sources' fluxes in each "
        "image times a log-normal gain of mean 1 (the noise is not scaled) "
        "(default %(default)s)",
    )
    e.add_argument(
        "--iono-offset-arcsec",
        type=float,
        default=d.iono_offset_arcsec,
        metavar="X",
        help="rms per axis of a per-epoch ionospheric shift of the field, at --iono-ref-mhz, "
        "scaling as freq**-2 (default %(default)s)",
    )
    e.add_argument(
        "--iono-gradient-arcsec-per-deg",
        type=float,
        default=d.iono_gradient_arcsec_per_deg,
        metavar="X",
        help="rms of each element of a per-epoch linear gradient of that shift across the "
        "field, arcsec per deg from the centre (default %(default)s)",
    )
    e.add_argument(
        "--iono-ref-mhz",
        type=float,
        default=None,
        metavar="MHZ",
        help="frequency the ionospheric rms values refer to (default --freq-mhz)",
    )
    e.add_argument(
        "--sidelobe-fraction",
        type=float,
        default=d.sidelobe_fraction,
        metavar="F",
        help="sidelobe artefacts around bright sources, of this fraction of the source's "
        "apparent peak (default %(default)s: none)",
    )
    e.add_argument(
        "--sidelobe-threshold-jy",
        type=float,
        default=d.sidelobe_threshold_jy,
        metavar="JY",
        help="apparent peak (Jy/beam) from which a source has sidelobes (default %(default)s)",
    )
    e.add_argument(
        "--sidelobe-spokes",
        type=int,
        default=d.sidelobe_spokes,
        metavar="N",
        help="artefacts per radius, evenly spaced in angle (default %(default)s)",
    )
    e.add_argument(
        "--sidelobe-radii-beams",
        type=float,
        nargs="+",
        default=list(d.sidelobe_radii_beams),
        metavar="R",
        help="distances of the artefacts from their source, in beam FWHMs "
        "(default %(default)s)",
    )
    e.add_argument(
        "--sidelobe-rotation-deg",
        type=float,
        default=d.sidelobe_rotation_deg,
        metavar="DEG",
        help="angle the sidelobe pattern turns by per epoch (default %(default)s)",
    )
    e.add_argument(
        "--scintillation-index",
        type=float,
        default=d.scintillation_index,
        metavar="M",
        help="modulation index (std/mean) of an independent per-image log-normal flux "
        "modulation of every (compact) source (default %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The :class:`SimulationConfig` the command-line options describe."""
    return SimulationConfig(
        seed=args.seed,
        epochs=args.epochs,
        bands=args.bands,
        size=args.size,
        pixel_arcsec=args.pixel_arcsec,
        beam_arcsec=tuple(args.beam_arcsec) if args.beam_arcsec else None,
        rms_jy=args.rms,
        cadence_s=args.cadence_s,
        start_time=args.start,
        ra_deg=args.ra,
        dec_deg=args.dec,
        freq_hz=args.freq_mhz * 1e6,
        band_spacing_hz=args.band_spacing_mhz * 1e6,
        allsky=args.allsky,
        drift=args.drift,
        n_steady=args.n_steady,
        n_variable=args.n_variable,
        n_transient=args.n_transient,
        n_fading=args.n_fading,
        modulation_index=args.modulation_index,
        transient_start_epoch=args.transient_start,
        transient_duration=args.transient_duration,
        spectral_index=args.spectral_index,
        spectral_index_scatter=args.spectral_index_scatter,
        min_separation_beams=args.min_separation_beams,
        jitter_arcsec=args.jitter_arcsec,
        gain_scatter=args.gain_scatter,
        iono_offset_arcsec=args.iono_offset_arcsec,
        iono_gradient_arcsec_per_deg=args.iono_gradient_arcsec_per_deg,
        iono_ref_freq_hz=None if args.iono_ref_mhz is None else args.iono_ref_mhz * 1e6,
        sidelobe_fraction=args.sidelobe_fraction,
        sidelobe_threshold_jy=args.sidelobe_threshold_jy,
        sidelobe_spokes=args.sidelobe_spokes,
        sidelobe_radii_beams=tuple(args.sidelobe_radii_beams),
        sidelobe_rotation_deg=args.sidelobe_rotation_deg,
        scintillation_index=args.scintillation_index,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.stream:
        from trapline.stream import parse_address, send_series, simulated_timesteps

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
