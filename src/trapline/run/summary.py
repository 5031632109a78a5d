"""What a run did, for its closing report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from trapline.records import KIND_NAMES, ImageResult


@dataclass
class RunSummary:
    """Counts of one run (or of one listening session)."""

    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    skipped: int = 0
    candidates: Counter = field(default_factory=Counter)
    measurements: Counter = field(default_factory=Counter)
    n_sources: int = 0
    seconds: float = 0.0
    storage_errors: int = 0
    plugin_errors: int = 0
    compacted: int = 0
    # Why the run stopped before its last image (storage unusable), or None.
    stopped: str | None = None

    def add(self, result: ImageResult) -> None:
        if result.image.accepted:
            self.accepted += 1
        else:
            self.rejected[(result.image.reject_reason or "rejected").split(":")[0]] += 1
        for kind, level in zip(result.candidates.kind, result.candidates.level, strict=True):
            self.candidates[f"{kind} ({level})"] += 1
        kinds, counts = np.unique(np.asarray(result.measurements.kind, dtype=np.int64),
                                  return_counts=True)
        for k, c in zip(kinds, counts, strict=True):
            self.measurements[KIND_NAMES[int(k)]] += int(c)

    @property
    def failed(self) -> bool:
        """Something the user must act on: images not stored, the run stopped early, or
        every image rejected (a run that accepted none of its images did not do its job)."""
        every_rejected = bool(self.rejected) and not self.accepted
        return bool(self.storage_errors or self.stopped or every_rejected)

    def report(self) -> str:
        images = self.accepted + sum(self.rejected.values())
        lines = [f"images: {images} processed in {self.seconds:.1f} s "
                 f"({images / max(self.seconds, 1e-9):.1f} images/s), {self.accepted} accepted, "
                 f"{sum(self.rejected.values())} rejected, {self.skipped} already stored"]
        for reason, n in sorted(self.rejected.items()):
            lines.append(f"  rejected ({reason}): {n}")
        lines.append(f"sources: {self.n_sources}; measurements: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(self.measurements.items())))
        if self.candidates:
            lines.append("candidates: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.candidates.items())))
        else:
            lines.append("candidates: none")
        if self.compacted:
            lines.append(f"lightcurves: {self.compacted} old points down-sampled into bins")
        if self.storage_errors:
            lines.append(f"storage errors: {self.storage_errors} images not stored (see log)")
        if self.plugin_errors:
            lines.append(f"plug-in errors: {self.plugin_errors} messages a plug-in failed on "
                         "(see log; the images are stored)")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)
