"""Plug-ins consuming the pipeline's channels: the database writer, the alerter (the
candidate finder), the lightcurve compactor and the Parquet archiver, plus any found
through the ``trapline.plugins`` entry points or named in the configuration."""

from trapline.plugins.base import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    BasePlugin,
    Configurable,
    DeadLetter,
    Option,
    Plugin,
    PluginContext,
    PluginHost,
    discover,
    load_plugin,
    load_plugin_spec,
    load_plugins,
    parse_spec,
)

__all__ = [
    "BUILTIN", "ENTRY_POINT_GROUP", "BasePlugin", "Configurable", "DeadLetter", "Option",
    "Plugin", "PluginContext", "PluginHost", "discover", "load_plugin", "load_plugin_spec",
    "load_plugins", "parse_spec",
]
