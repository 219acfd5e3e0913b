"""fsyncprobe: is this node's disk fit to hold cluster state?"""

from fsyncprobe._version import version as _version

__version__ = _version()
