"""Web interface of a stored run: ``trapline serve --db URL`` (FastAPI, Jinja2, Plotly).

:func:`create_app` builds the ASGI application; see :mod:`trapline.web.app`.
"""

from trapline.web.app import create_app

__all__ = ["create_app"]
