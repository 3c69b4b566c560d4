"""A station loop for the crash test: synthetic boards, ONNX Runtime, storage before the "PLC".

Usage: python station_child.py RECIPE DB_URL DATA_DIR. The stand-in PLC sink prints
``PLC <uuid>`` (flushed) for every verdict it receives, i.e. after Storage.publish returned;
the parent kills this process with SIGKILL at some point and checks those UUIDs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aoi.config import StorageConfig
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.storage import Storage
from aoi.types import InspectionResult


class PrintingPlc:
    """Stands in for the PLC link: a verdict 'reached the PLC' when it is printed."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def publish(self, result: InspectionResult) -> None:
        stored = self.storage.stored(result.inspection_id)
        assert stored is not None, "storage sits before the PLC in the sinks"
        sys.stdout.write(f"PLC {stored.uuid}\n")
        sys.stdout.flush()


def main() -> None:
    recipe, url, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    loaded = load_recipe(recipe)
    config = StorageConfig(
        journal_dir=data / "journal",
        archive_dir=data / "archive",
        archive_images=True,
        flush_interval_ms=10,
        batch_rows=20,
        min_free_gb=0.0,
    )
    with (
        Storage(config, station_id="crash-test", database_url=url, data_dir=data) as storage,
        OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1) as backend,
    ):
        pipeline = Pipeline(loaded, backend, sinks=[storage, PrintingPlc(storage)])
        source = SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5)
        with source:
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            run_cycles(pipeline, source, cycles=None)


if __name__ == "__main__":
    main()
