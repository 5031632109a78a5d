"""Sending image series to a listener, for tests and demos (``trapline simulate --stream``).

Like AARTFAAC, each band comes over its own connection (``per_band=True``); a timestep's
images are sent together, one timestep every ``cadence_s`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable, Iterator

from trapline.image import Image
from trapline.simulate import iter_images
from trapline.stream.wire import encode

log = logging.getLogger(__name__)


def simulated_timesteps(config) -> Iterator[list[Image]]:
    """A :class:`~trapline.simulate.SimulationConfig` series, one list of bands per epoch."""
    images = (image for image, _truth in iter_images(config))
    for _epoch, group in itertools.groupby(images, key=lambda im: im.meta.get("epoch")):
        yield list(group)


async def send_timesteps(
    host: str,
    port: int,
    timesteps: Iterable[list[Image]],
    format: str = "gijs",
    cadence_s: float = 0.0,
    per_band: bool = True,
) -> int:
    """Send each timestep's images to ``host:port``, one timestep per ``cadence_s``.

    With ``per_band`` the i-th image of every timestep goes over the i-th connection;
    otherwise all go over one. Returns the number of images sent.
    """
    writers: dict[int, asyncio.StreamWriter] = {}
    start = time.monotonic()
    sent = 0
    try:
        for n, step in enumerate(timesteps):
            wait = start + n * cadence_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            for band, image in enumerate(step):
                slot = band if per_band else 0
                if slot not in writers:
                    _, writers[slot] = await asyncio.open_connection(host, port)
                writers[slot].write(encode(image, format))
            await asyncio.gather(*(w.drain() for w in writers.values()))
            sent += len(step)
            log.info("sent timestep %d (%d images) to %s:%d", n, len(step), host, port)
    finally:
        for w in writers.values():
            w.close()
        for w in writers.values():
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass
    return sent


def send_series(
    host: str,
    port: int,
    timesteps: Iterable[list[Image]],
    format: str = "gijs",
    cadence_s: float = 0.0,
    per_band: bool = True,
) -> int:
    """Blocking :func:`send_timesteps`."""
    return asyncio.run(send_timesteps(host, port, timesteps, format, cadence_s, per_band))
