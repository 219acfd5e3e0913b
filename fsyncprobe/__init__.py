"""fsyncprobe: is this node's disk fit to hold cluster state?"""

__version__ = "0.1.0"
