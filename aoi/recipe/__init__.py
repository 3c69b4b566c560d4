"""Recipe: everything needed to inspect one product variant, one TOML file each.

:mod:`aoi.recipe.schema` holds the pydantic models; :mod:`aoi.recipe.loading` finds, reads,
migrates, validates and hashes recipe files; :mod:`aoi.recipe.template` reads the golden
template. The template reader is imported from its own module, not re-exported here: it needs
:mod:`aoi.vision`, which imports this package's schema.
"""

from aoi.recipe.loading import (
    DEFAULT_RECIPE,
    MIGRATIONS,
    LoadedRecipe,
    file_hash,
    find_recipe,
    format_validation_error,
    load_recipe,
    migrate,
    parse_recipe,
    read_recipe_toml,
    recipe_hash,
    recipes_dir,
)
from aoi.recipe.schema import (
    MODEL_CHANNELS,
    SCHEMA_VERSION,
    CameraSettings,
    ClassName,
    ClassRule,
    Geometry,
    MaskRegion,
    ModelSettings,
    Profile,
    Recipe,
    RegistrationSettings,
    Shape4,
    SyntheticSettings,
    VerdictRules,
    _tiles_along,
    json_schema,
)

__all__ = [
    "DEFAULT_RECIPE",
    "MIGRATIONS",
    "MODEL_CHANNELS",
    "SCHEMA_VERSION",
    "CameraSettings",
    "ClassName",
    "ClassRule",
    "Geometry",
    "LoadedRecipe",
    "MaskRegion",
    "ModelSettings",
    "Profile",
    "Recipe",
    "RegistrationSettings",
    "Shape4",
    "SyntheticSettings",
    "VerdictRules",
    "_tiles_along",
    "file_hash",
    "find_recipe",
    "format_validation_error",
    "json_schema",
    "load_recipe",
    "migrate",
    "parse_recipe",
    "read_recipe_toml",
    "recipe_hash",
    "recipes_dir",
]
