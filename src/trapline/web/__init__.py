"""Web interface of a stored run: ``trapline serve --db URL`` (FastAPI, Jinja2, Plotly).

:func:`create_app` builds the ASGI application of one run, :func:`create_runs_app` one
server for several; see :mod:`trapline.web.app`.
"""

from trapline.web.app import create_app, create_runs_app

__all__ = ["create_app", "create_runs_app"]
