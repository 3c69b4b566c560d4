"""AOI station core: recipes, image sources, vision, inference and the inspection cycle.

This package never imports Qt; ``ui`` observes it from above (enforced by import-linter).
"""

__version__ = "0.1.0"
