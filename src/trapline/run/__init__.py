"""Running the pipeline: the one driver (restore, decide, store, publish) and the ways
images reach it -- batch runs over files, live streams -- with the measuring done in
this process, in worker processes or on a Dask cluster."""

from trapline.run.batch import run_files, run_images, sort_by_time, timesteps
from trapline.run.driver import Driver, RunStopped, make_decider
from trapline.run.executors import Measurer, default_workers
from trapline.run.live import LiveProcessor
from trapline.run.summary import RunSummary

__all__ = ["Driver", "LiveProcessor", "Measurer", "RunStopped", "RunSummary", "default_workers",
           "make_decider", "run_files", "run_images", "sort_by_time", "timesteps"]
