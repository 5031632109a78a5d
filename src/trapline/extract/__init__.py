"""Source extraction: PySE's published methods in vectorised numpy.

>>> from trapline.extract import extract, ExtractionConfig
>>> result = extract(image, ExtractionConfig(detection_sigma=8))
>>> result.sources.to_pandas()          # the catalogue
>>> result.forced(ra, dec)              # forced fits at other positions
"""

from trapline.extract.catalogue import Catalogue
from trapline.extract.config import ExtractionConfig
from trapline.extract.extraction import Extraction, extract
from trapline.extract.forced import ForcedMeasurements

__all__ = ["Catalogue", "Extraction", "ExtractionConfig", "ForcedMeasurements", "extract"]
