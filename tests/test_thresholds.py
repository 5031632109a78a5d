"""Thresholds from the run's own distributions: sigma-clipped Gaussian fits to log10
of eta and V (Rowlinson et al. 2019)."""

from __future__ import annotations

import numpy as np
import pytest

from trapline.pipeline.thresholds import derived_thresholds, fit_log_gaussian


@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_mu_and_sigma_of_a_log_normal_sample(seed):
    rng = np.random.default_rng(seed)
    n, mu, sigma = 4000, rng.uniform(-2, 2), rng.uniform(0.2, 1.0)
    values = 10.0 ** rng.normal(mu, sigma, n)
    fit_mu, fit_sigma = fit_log_gaussian(values)
    # 4 standard errors of the mean and of the standard deviation of n draws
    assert fit_mu == pytest.approx(mu, abs=4 * sigma / np.sqrt(n))
    assert fit_sigma == pytest.approx(sigma, abs=4 * sigma / np.sqrt(2 * n))


@pytest.mark.parametrize("seed", range(5))
def test_clipping_ignores_a_five_percent_outlier_population(seed):
    rng = np.random.default_rng(100 + seed)
    n, mu, sigma = 4000, 0.3, 0.4
    steady = rng.normal(mu, sigma, n)
    variables = rng.normal(mu + 8 * sigma, sigma, n // 20)  # 5%: the variables
    values = 10.0 ** np.concatenate([steady, variables])
    fit_mu, fit_sigma = fit_log_gaussian(values)
    assert fit_mu == pytest.approx(mu, abs=4 * sigma / np.sqrt(n))
    assert fit_sigma == pytest.approx(sigma, abs=4 * sigma / np.sqrt(2 * n))
    # without clipping the outliers pull both far off
    logs = np.log10(values)
    assert abs(logs.mean() - mu) > 10 * sigma / np.sqrt(n)


def test_non_positive_and_non_finite_values_are_ignored_and_too_few_refused():
    rng = np.random.default_rng(7)
    good = 10.0 ** rng.normal(0.0, 0.5, 500)
    with_junk = np.concatenate([good, [0.0, -1.0, np.nan, np.inf]])
    assert fit_log_gaussian(with_junk) == fit_log_gaussian(good)
    with pytest.raises(ValueError, match="at least 3"):
        fit_log_gaussian([1.0, 0.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="no spread"):
        fit_log_gaussian([2.0, 2.0, 2.0])


def test_derived_thresholds_are_mean_plus_n_sigma_in_log_space():
    rng = np.random.default_rng(3)
    eta = 10.0 ** rng.normal(0.5, 0.3, 2000)
    v = 10.0 ** rng.normal(-1.5, 0.2, 2000)
    (me, se), (mv, sv) = fit_log_gaussian(eta), fit_log_gaussian(v)
    eta_thr, v_thr = derived_thresholds(eta, v, 2.0)
    assert np.log10(eta_thr) == pytest.approx(me + 2 * se, rel=1e-12)
    assert np.log10(v_thr) == pytest.approx(mv + 2 * sv, rel=1e-12)
    # about 2.3% of a Gaussian lies above mean + 2 sigma
    assert np.mean(eta > eta_thr) == pytest.approx(0.0228, abs=4 * np.sqrt(0.0228 / 2000))
