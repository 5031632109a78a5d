"""What a stored run says about itself: the configuration it ran with (stored with each
image's run-state values under the key ``config``), the variability thresholds that
follow from it, the software version and when its images were processed.

The web pages, the notebook API (:mod:`trapline.api`) and the examples take their
default thresholds from here, so they flag the same variables as the pipeline did.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import Connection, func, select

from trapline.errors import TraplineError
from trapline.pipeline.config import PipelineConfig, config_from_dict
from trapline.storage import models
from trapline.version import __version__

log = logging.getLogger(__name__)

CONFIG_KEY = "config"  # run-state key of the JSON configuration (see Runner.state_values)


def software_version() -> str:
    """The installed Trapline version (package metadata, else ``trapline.__version__``)."""
    try:
        return version("trapline")
    except PackageNotFoundError:
        return __version__


def stored_config(conn: Connection) -> dict[str, Any] | None:
    """The configuration stored with the run as a dict, None when none is stored (or
    it is not valid JSON)."""
    st = models.PipelineState
    text = conn.execute(select(st.value).where(st.key == CONFIG_KEY)).scalar()
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        log.warning("the stored run configuration is not valid JSON; using the defaults")
        return None
    return data if isinstance(data, dict) else None


def run_config(conn: Connection) -> tuple[PipelineConfig, bool]:
    """The run's configuration and whether it was stored (False: the defaults of
    :class:`PipelineConfig`, for a database without one or with one this version
    cannot read)."""
    data = stored_config(conn)
    if data is None:
        return PipelineConfig(), False
    try:
        return config_from_dict(data), True
    except TraplineError as exc:
        log.warning("the stored run configuration cannot be read (%s); using the defaults",
                    exc)
        return PipelineConfig(), False


def thresholds(conn: Connection) -> dict[str, Any]:
    """The variability thresholds the run flagged variables with: ``eta_threshold``,
    ``v_threshold`` (both dimensionless), ``min_points``, ``false_alarm_p`` and
    ``from_run`` (False when they are the defaults because no configuration is
    stored)."""
    config, stored = run_config(conn)
    return {**asdict(config.variability), "from_run": stored}


def processing(conn: Connection) -> dict[str, Any]:
    """When the run's images were processed (wall clock, UTC ISO 8601): first and last
    ``processed_at``, and the image counts (all, accepted)."""
    i = models.Image
    first, last, n, accepted = conn.execute(select(
        func.min(i.processed_at), func.max(i.processed_at), func.count(),
        func.count().filter(i.accepted.is_(True)))).one()
    return {"first_processed": first.isoformat() if first else None,
            "last_processed": last.isoformat() if last else None,
            "images": int(n or 0), "accepted": int(accepted or 0)}
