"""Registration accuracy over random motions: max / mean / p99 corner error (px) and failures.

150 random shifts (up to 0.7 of the recipe's max_shift_px) and rotations (up to 0.95 of its
max_rotation_deg) per board, noise sigma 4, on the deeppcb-640 template (its own registration
settings), a binary and a grey synthetic board (the defaults). Run from the checkout's root:

    python tools/figures/registration_random.py
"""

import cv2
import numpy as np

from aoi.errors import RegistrationError
from aoi.recipe import RegistrationSettings, load_recipe
from aoi.recipe.template import load_template
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar

loaded = load_recipe("recipes/deeppcb-640.toml")
boards = {
    "deeppcb-640": (
        load_template(loaded.template_path, 640, 640, "deeppcb-640"),
        loaded.recipe.registration,
    ),
    "binary 640x512": (golden_board(512, 640, 5, "binary"), RegistrationSettings()),
    "grey 640x640": (golden_board(640, 640, 5, "grey"), RegistrationSettings()),
}
rng = np.random.default_rng(7)
for name, (board, settings) in boards.items():
    registrar = Registrar(board, settings)
    h, w = board.shape
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float)
    errors, failures = [], 0
    for _ in range(150):
        angle = rng.uniform(-1, 1) * settings.max_rotation_deg * 0.95
        radius, heading = rng.uniform(0, settings.max_shift_px * 0.7), rng.uniform(0, 2 * np.pi)
        truth = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
        truth[:, 2] += (radius * np.cos(heading), radius * np.sin(heading))
        moved = cv2.warpAffine(board, truth, (w, h), borderMode=cv2.BORDER_REPLICATE)
        moved = np.clip(moved + rng.normal(0, 4, moved.shape), 0, 255).astype(np.uint8)
        try:
            found = registrar.register(moved).transform.astype(float)
        except RegistrationError:
            failures += 1
            continue
        got = corners @ found[:, :2].T + found[:, 2]
        errors.append(np.abs(got - (corners @ truth[:, :2].T + truth[:, 2])).max())
    e = np.array(errors)
    print(
        f"{name}: failures {failures}, corner error max {e.max():.4f} mean {e.mean():.4f} "
        f"p99 {np.percentile(e, 99):.4f} px"
    )
