"""Long-lived radio-pyse process used by extract_bench.py (run it with one-core settings).

Reads one JSON request per line on stdin, ``{"path": FITS, "detection": D}``, runs radio-pyse's
vectorised moments extraction exactly as :func:`trapline.testing.pyse_oracle.run_pyse` does
(analysis 3, grid 32, deblending off) and answers one line ``@pyse {json}`` on stdout with
``import_s`` (importing radio-pyse, mostly numba compilation), ``read_s`` (opening the FITS
file and building the image object), ``extract_s`` (background, islands and measurement:
``ImageData.extract()``) and the 0-based pixel positions ``x``, ``y`` of the sources found.
"""

from __future__ import annotations

import gc
import json
import sys
import time

PREFIX = "@pyse "


def main() -> None:
    start = time.perf_counter()
    import sourcefinder.accessors  # noqa: F401  (timed here, not in the first request)
    import sourcefinder.image  # noqa: F401

    from trapline.testing.pyse_oracle import _image, _quiet

    import_s = time.perf_counter() - start
    for request in sys.stdin:
        args = json.loads(request)
        gc.collect()
        with _quiet():
            t0 = time.perf_counter()
            image = _image(args["path"], float(args["detection"]), 3.0, 32, False)
            t1 = time.perf_counter()
            raw = image.extract()
            t2 = time.perf_counter()
        found = len(raw) > 0
        reply = {
            "import_s": import_s,
            "read_s": t1 - t0,
            "extract_s": t2 - t1,
            "x": raw["x"].tolist() if found else [],
            "y": raw["y"].tolist() if found else [],
        }
        print(PREFIX + json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
