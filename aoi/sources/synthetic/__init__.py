"""The synthetic camera: bare boards drawn with known defects (boardgen), as an image source."""

from aoi.sources.synthetic.prerender import PrerenderedSource
from aoi.sources.synthetic.source import SyntheticSource

__all__ = ["PrerenderedSource", "SyntheticSource"]
