"""The one place that wires a station: rig, source, pipeline, storage, PLC link, runner."""
