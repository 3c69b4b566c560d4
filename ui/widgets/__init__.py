"""The station's own widgets, drawn with QPainter: image with defect boxes, verdict, lights, charts.

Small and dependency-free (no QtCharts): each widget takes plain data (a display frame, a light,
a counter snapshot, Pareto rows) and paints it, large enough to read from two metres away. By
kind: :mod:`~ui.widgets.basics` (panels, opaque painting, local times),
:mod:`~ui.widgets.image` (board images and defect boxes), :mod:`~ui.widgets.status` (verdict,
lights, counters), :mod:`~ui.widgets.charts` (cycle times, Pareto).
"""

from ui.widgets.basics import local_time, opaque, panel
from ui.widgets.charts import CycleChart, ParetoChart, nice_ticks
from ui.widgets.image import CropView, ImageView, draw_box, fit_rect, to_qimage
from ui.widgets.status import CounterTile, LightView, VerdictBanner

__all__ = [
    "CounterTile",
    "CropView",
    "CycleChart",
    "ImageView",
    "LightView",
    "ParetoChart",
    "VerdictBanner",
    "draw_box",
    "fit_rect",
    "local_time",
    "nice_ticks",
    "opaque",
    "panel",
    "to_qimage",
]
