"""Live image-stream ingest (``trapline listen``): AARTFAAC imagers send images over TCP.

Both wire formats seen in practice are understood, detected per connection
(:mod:`trapline.stream.wire`): the GIJS format (512-byte prefix with magic
``0x47494A53484F4D4F``, FITS header text, float32 pixels) and plain concatenated FITS
files. Images are grouped into timesteps across bands (:mod:`~trapline.stream.assembler`)
and processed in time order (:mod:`~trapline.stream.listener`), by the pipeline's
live adapter (:class:`trapline.run.LiveProcessor`) into a database.
"""

from trapline.stream.assembler import Assembler, Timestep
from trapline.stream.config import StreamConfig, parse_address
from trapline.stream.listener import Listener, listen
from trapline.stream.metrics import StreamMetrics
from trapline.stream.sender import send_series, send_timesteps, simulated_timesteps
from trapline.stream.wire import (
    FITS,
    FORMATS,
    GIJS,
    MAGIC,
    Frame,
    FrameReader,
    Limits,
    ProtocolError,
    encode,
    encode_fits,
    encode_gijs,
    frame_to_image,
)

__all__ = [
    "FITS",
    "FORMATS",
    "GIJS",
    "MAGIC",
    "Assembler",
    "Frame",
    "FrameReader",
    "Limits",
    "Listener",
    "ProtocolError",
    "StreamConfig",
    "StreamMetrics",
    "Timestep",
    "encode",
    "encode_fits",
    "encode_gijs",
    "frame_to_image",
    "listen",
    "parse_address",
    "send_series",
    "send_timesteps",
    "simulated_timesteps",
]
