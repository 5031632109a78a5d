"""The Trapline version, in a module of its own at the bottom of the import graph
(the package, the stored run information and the webhook's User-Agent all read it)."""

__version__ = "0.1.0"
