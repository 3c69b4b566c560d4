"""The one place that wires a station, and the tools built on it.

``station.py`` assembles a station (storage, event bus, PLC link, rig, runner) for every front
end; ``rig.py`` is the recipe-bound part (template, engine, source, warm pipeline). The rest use
them: ``arguments`` (the station's command-line flags), ``bench`` (logging on against off),
``evaluation`` and ``defect_free`` (``aoi eval``), ``calibration`` and ``engines`` (TensorRT
engines), ``doctor``, ``plcsim``, ``recipe_cli``, ``signals``. This is the only package of the
core that may import ``plc``.
"""
