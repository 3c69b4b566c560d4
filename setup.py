"""Build hook that puts the shipped recipes, templates and models into the wheel.

The checkout keeps them at top level (``recipes/``, ``models/``), where the card wants them and
where the recipes' relative paths (``../models/...``) point. A wheel holds them as
``aoi/_shipped/{recipes,models}``, the same two folders side by side, so those paths resolve
unchanged; ``aoi.recipe.loading.shipped_root`` finds either. Everything else is in
pyproject.toml. Only model files, their cards and their training-data table ship, not the
training code beside them.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Folder of the checkout -> glob patterns of the files the wheel ships from it.
SHIPPED = {
    "recipes": ["*.toml", "templates/*.png"],
    "models": ["aoi-defect-v*.onnx", "aoi-defect-v*.md", "training_data.toml"],
}


class BuildPyWithShipped(build_py):
    """``build_py`` that also copies :data:`SHIPPED` into ``aoi/_shipped/`` of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders in place
        root = Path(__file__).parent
        target = Path(self.build_lib, "aoi", "_shipped")
        # A rebuild in the same build folder must not keep a recipe deleted from the checkout.
        shutil.rmtree(target, ignore_errors=True)
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for src in sorted((root / folder).glob(pattern)):
                    dst = target / src.relative_to(root)
                    self.mkpath(str(dst.parent))
                    self.copy_file(str(src), str(dst))


setup(cmdclass={"build_py": BuildPyWithShipped})
