"""Publishing one image's result on the pipeline's channels."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from trapline.channels import codec
from trapline.channels.base import (
    CANDIDATES,
    DETECTIONS,
    IMAGES,
    MEASUREMENTS,
    RESULTS,
    Broker,
)
from trapline.records import BLIND, Columns, ImageResult

__all__ = ["DEFAULT_CHANNELS", "ImageColumns", "publish_result"]

DEFAULT_CHANNELS = (RESULTS, IMAGES, DETECTIONS, MEASUREMENTS, CANDIDATES)


@codec.register
@dataclass
class ImageColumns:
    """A batch of columns (measurements, candidates) with the image they belong to."""

    image_key: str
    time_mjd: float
    band: int
    freq_hz: float
    columns: Columns


def publish_result(broker: Broker, result: ImageResult,
                   headers: Mapping[str, str] | None = None,
                   channels: Collection[str] = DEFAULT_CHANNELS) -> dict[str, str]:
    """Publish an image's result: the whole ImageResult on ``results`` (with
    ``headers``, e.g. the pipeline state to store in the same transaction), and its
    parts on ``images``, ``detections``, ``measurements`` and ``candidates``; empty
    parts are not published. Returns the message id per channel."""
    image = result.image
    ids: dict[str, str] = {}
    if RESULTS in channels:
        ids[RESULTS] = broker.publish(RESULTS, result, headers)
    if IMAGES in channels:
        ids[IMAGES] = broker.publish(IMAGES, image)

    def part(channel: str, columns: Columns) -> None:
        if channel in channels and len(columns):
            ids[channel] = broker.publish(channel, ImageColumns(
                image.image_key, image.time_mjd, image.band, image.freq_hz, columns))

    m = result.measurements
    if len(m):
        part(DETECTIONS, m.rows(np.asarray(m.kind) == BLIND))
    part(MEASUREMENTS, m)
    part(CANDIDATES, result.candidates)
    return ids
