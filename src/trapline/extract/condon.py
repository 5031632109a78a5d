"""Measurement errors of a Gaussian source in an image with correlated noise.

Condon (1997, PASP 109, 166), eqs. 21 and 41-42, with the noise correlated over the
restoring beam as in PySE: the effective signal-to-noise ratio

    rho^2 = (theta_M theta_m / (4 theta_B theta_b))
            (1 + (theta_B/theta_M)^2)^a_M (1 + (theta_b/theta_m)^2)^a_m (A/sigma)^2

uses (a_M, a_m) = (3/2, 3/2) for the amplitude, (5/2, 1/2) for position and width
along the major axis, and (1/2, 5/2) along the minor axis and for the position angle.
All widths here are Gaussian sigmas in pixels; theta_B, theta_b are the beam's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GaussianErrors:
    """1-sigma errors: peak and integrated flux (same units as the inputs), position
    along the major and minor axes and the axes themselves (pixels), angle (radians)."""

    peak: np.ndarray
    flux: np.ndarray
    along_major: np.ndarray
    along_minor: np.ndarray
    sig_maj: np.ndarray
    sig_min: np.ndarray
    theta: np.ndarray


def _rho_sq(snr, sig_maj, sig_min, beam_maj, beam_min, a_maj, a_min):
    return (
        sig_maj * sig_min / (4.0 * beam_maj * beam_min)
        * (1.0 + (beam_maj / sig_maj) ** 2) ** a_maj
        * (1.0 + (beam_min / sig_min) ** 2) ** a_min
        * snr**2
    )


def condon_errors(
    peak: np.ndarray,
    rms: np.ndarray,
    sig_maj: np.ndarray,
    sig_min: np.ndarray,
    beam_maj: float,
    beam_min: float,
) -> GaussianErrors:
    """Errors of peak, integrated flux, position, axes and angle (Condon 1997).

    Args:
        peak: peak brightness (Jy/beam).
        rms: local noise (Jy/beam).
        sig_maj, sig_min: source Gaussian sigmas (pixels).
        beam_maj, beam_min: beam Gaussian sigmas (pixels).
    """
    snr = np.abs(peak) / rms
    rho_amp = _rho_sq(snr, sig_maj, sig_min, beam_maj, beam_min, 1.5, 1.5)
    rho_maj = _rho_sq(snr, sig_maj, sig_min, beam_maj, beam_min, 2.5, 0.5)
    rho_min = _rho_sq(snr, sig_maj, sig_min, beam_maj, beam_min, 0.5, 2.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_err = np.abs(peak) * np.sqrt(2.0 / rho_amp)
        err_maj = sig_maj * np.sqrt(2.0 / rho_maj)
        err_min = sig_min * np.sqrt(2.0 / rho_min)
        along_major = sig_maj * np.sqrt(2.0 / rho_maj)
        along_minor = sig_min * np.sqrt(2.0 / rho_min)
        ellipticity = sig_maj * sig_min / (sig_maj**2 - sig_min**2)
        theta_err = 2.0 / np.sqrt(rho_min) * ellipticity  # Condon eq. 21
        theta_err = np.where(np.isfinite(theta_err), np.minimum(theta_err, np.pi), np.pi)
        flux = peak * sig_maj * sig_min / (beam_maj * beam_min)
        rel_flux = np.sqrt(
            (peak_err / peak) ** 2
            + (beam_maj * beam_min / (sig_maj * sig_min))
            * ((err_maj / sig_maj) ** 2 + (err_min / sig_min) ** 2)
        )
    return GaussianErrors(
        peak=peak_err,
        flux=np.abs(flux) * rel_flux,
        along_major=along_major,
        along_minor=along_minor,
        sig_maj=err_maj,
        sig_min=err_min,
        theta=theta_err,
    )
