"""``aoi doctor``: what this station has (TensorRT, CUDA, GPU, ONNX Runtime, cameras, engines).

An app-level command: it asks the inference layer's probes (:mod:`aoi.inference.probe`), the
GenTL producers of the camera source and the engine cache, and with ``--parity`` runs TensorRT
against ONNX Runtime on synthetic boards. Output follows the CLI's rules (``--json`` puts one
JSON object on the last line of stdout).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from aoi.app.calibration import recipe_calibration, synthetic_batches
from aoi.app.plant.doctor import plant_checks
from aoi.app.preflight import Check, preflight
from aoi.config import load_station_config
from aoi.errors import AoiError, CameraError
from aoi.heap import status as heap_status
from aoi.inference import engine_settings
from aoi.inference.kernreg import status as registration_status
from aoi.inference.pinned_frames import status as frame_memory_status
from aoi.inference.probe import (
    Finding,
    choose_backend,
    probe_cuda,
    probe_gpu,
    probe_ort_cuda,
    probe_tensorrt,
)
from aoi.inference.tensorrt.cache import list_engines
from aoi.model_terms import model_terms
from aoi.recipe import DEFAULT_RECIPE, find_recipe, load_recipe, recipes_dir
from aoi.storage.db import default_data_dir
from aoi.types import BackendName

_NVIDIA_SMI_FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total")


def add_doctor_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``aoi doctor [--json] [--station TOML] [--parity RECIPE]``."""
    p = subparsers.add_parser(
        "doctor", help="report TensorRT, CUDA, GPU, onnxruntime, cameras and the engine cache"
    )
    p.add_argument("--station", default=None, help="station config TOML (GenTL paths, cache)")
    p.add_argument(
        "--parity",
        default=None,
        metavar="RECIPE",
        help="also compare TensorRT with ONNX Runtime on synthetic boards of this recipe",
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="station data folder (default: AOI_DATA_DIR)"
    )
    p.add_argument(
        "--recipes-dir", type=Path, default=None, help="recipes to check (default: the shipped)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    p.set_defaults(func=cmd_doctor)
    return p


def parse_nvidia_smi(text: str) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=<_NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits``."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(_NVIDIA_SMI_FIELDS):
            rows.append(dict(zip(_NVIDIA_SMI_FIELDS, parts, strict=True)))
    return rows


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"ok": False, "detail": "nvidia-smi is not on PATH (no NVIDIA driver installed?)"}
    query = f"--query-gpu={','.join(_NVIDIA_SMI_FIELDS)}"
    try:
        done = subprocess.run(  # noqa: S603 (fixed arguments, the driver's own tool)
            [exe, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"ok": False, "detail": f"nvidia-smi did not answer ({err})"}
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return {"ok": False, "detail": f"nvidia-smi failed: {detail[-1] if detail else '?'}"}
    return {"ok": True, "gpus": parse_nvidia_smi(done.stdout)}


def _genicam(cti_paths: list[Path]) -> dict[str, Any]:
    try:
        from aoi.sources.genicam import describe_device, find_cti_files, list_devices
    except ImportError as err:
        return {"ok": False, "detail": f"harvesters is not importable ({err})"}
    try:
        ctis = find_cti_files(cti_paths or None)
    except CameraError as err:
        return {"ok": False, "detail": str(err)}
    out: dict[str, Any] = {"ok": True, "producers": [str(c) for c in ctis]}
    try:
        out["cameras"] = [describe_device(d) for d in list_devices(ctis)]
    except CameraError as err:
        out["cameras_error"] = str(err)
    return out


def _engine_cache(folder: Path) -> dict[str, Any]:
    engines = list_engines(folder)
    return {
        "folder": str(folder),
        "exists": folder.is_dir(),
        "engines": [
            {
                "file": e.path.name,
                "bytes": e.size_bytes,
                "built_for": (e.components or {}).get("gpu_name", "unreadable sidecar"),
                "tensorrt": (e.components or {}).get("tensorrt_version", "?"),
            }
            for e in engines
        ],
    }


def _parity(recipe: str, station_path: str | None, trt: Finding) -> dict[str, Any]:
    if not trt.ok:
        return {"ok": False, "detail": f"not run: {trt.detail}"}
    from aoi.inference.onnxruntime import OnnxRuntimeBackend
    from aoi.inference.parity import run_parity
    from aoi.inference.tensorrt.backend import TensorRTBackend

    loaded = load_recipe(find_recipe(recipe))
    settings = engine_settings(load_station_config(station_path).inference)
    with ExitStack() as stack:
        ort = stack.enter_context(
            OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile)
        )
        trt_backend = stack.enter_context(
            TensorRTBackend(loaded, settings, calibration=recipe_calibration)
        )
        report = run_parity(
            ort, trt_backend, synthetic_batches(loaded, boards=4), loaded.recipe.model.precision
        )
    return {"ok": report.passed, "detail": report.text()}


def model_notices(recipes_folder: Path) -> list[dict[str, Any]]:
    """Per model file the recipes use (the default recipe's first): which recipes, what it was
    trained on and that data's terms (:mod:`aoi.model_terms`), and its report line."""
    paths = sorted(recipes_folder.glob("*.toml"))
    try:
        default: Path | None = find_recipe(DEFAULT_RECIPE).resolve()
    except AoiError:
        default = None
    resolved = [p.resolve() for p in paths]
    if default is not None:
        resolved = [default, *(p for p in resolved if p != default)]
    users: dict[Path, list[str]] = {}
    for path in resolved:
        try:
            loaded = load_recipe(path, check_files=False)
        except AoiError:
            continue  # the pre-flight names a recipe that does not load
        label = f"{loaded.name} (default)" if path == default else loaded.name
        for model in (loaded.model_path, *loaded.ensemble_paths):
            users.setdefault(model.resolve(), []).append(label)
    out = []
    for model, recipes in users.items():
        try:
            terms = model_terms(model)
            line = terms.line(", ".join(recipes))
            known, research_only = terms.known, terms.research_only
        except AoiError as err:
            line, known, research_only = f"{model.name}: {err}", False, False
        out.append(
            {
                "model": str(model),
                "recipes": recipes,
                "known": known,
                "research_only": research_only,
                "line": line,
            }
        )
    return out


def doctor_report(
    station_path: str | None,
    parity: str | None,
    data_dir: Path | None = None,
    recipes_folder: Path | None = None,
) -> dict[str, Any]:
    """Everything ``aoi doctor`` reports, as plain data (``preflight``: the line's checks)."""
    import onnxruntime as ort

    station = load_station_config(station_path)
    trt, gpu, ort_cuda = probe_tensorrt(), probe_gpu(), probe_ort_cuda()
    backend, why = choose_backend(BackendName.AUTO, tensorrt=trt, gpu=gpu, ort_cuda=ort_cuda)
    report: dict[str, Any] = {
        "tensorrt": {"ok": trt.ok, "detail": trt.detail},
        "cuda": probe_cuda(),
        "gpu": {"ok": gpu.ok, "detail": gpu.detail},
        "nvidia_smi": _nvidia_smi(),
        "onnxruntime": {"version": ort.__version__, "providers": ort.get_available_providers()},
        "genicam": _genicam(list(station.camera.cti_paths)),
        "engine_cache": _engine_cache(engine_settings(station.inference).engine_dir),
        "backend_auto": {"backend": backend.value, "why": why},
        "malloc": heap_status(),
        "frame_memory": frame_memory_status(backend.value),
        "registration": registration_status(backend.value),
    }
    checks = preflight(
        station,
        data_dir or default_data_dir(),
        recipes_folder or recipes_dir(),
        genicam=report["genicam"],
    )
    checks += plant_checks(station)  # [mqtt], [cfx], [opcua] (aoi/app/plant/doctor.py)
    report["preflight"] = [c.__dict__ for c in checks]
    report["model_terms"] = model_notices(recipes_folder or recipes_dir())
    if parity:
        try:
            report["parity"] = _parity(parity, station_path, trt)
        except AoiError as err:
            report["parity"] = {"ok": False, "detail": f"failed: {err}"}
    return report


def _lines(report: dict[str, Any]) -> list[str]:
    cuda, smi, cam, cache = (
        report["cuda"],
        report["nvidia_smi"],
        report["genicam"],
        report["engine_cache"],
    )
    trt = report["tensorrt"]
    lines = [
        f"TensorRT       {trt['detail'] if trt['ok'] else 'not usable: ' + trt['detail']}",
        f"cuda-python    {cuda.get('cuda_python')}",
    ]
    if "driver" in cuda:
        lines.append(f"CUDA driver    {cuda['driver']} (CUDA runtime {cuda.get('runtime')})")
    gpu = report["gpu"]
    lines.append(
        f"GPU            {gpu['detail'] if gpu['ok'] else 'none usable: ' + gpu['detail']}"
    )
    if smi["ok"]:
        for g in smi["gpus"]:
            lines.append(
                f"nvidia-smi     GPU {g['index']}: {g['name']}, compute capability "
                f"{g['compute_cap']}, driver {g['driver_version']}, {g['memory.total']} MiB"
            )
    else:
        lines.append(f"nvidia-smi     {smi['detail']}")
    o = report["onnxruntime"]
    lines.append(f"onnxruntime    {o['version']}, providers: {', '.join(o['providers'])}")
    if cam["ok"]:
        lines.append(f"GenTL          {len(cam['producers'])} producer(s): {cam['producers']}")
        cams = cam.get("cameras")
        found = f"{len(cams)}: {cams}" if cams is not None else cam.get("cameras_error")
        lines.append(f"cameras        {found}")
    else:
        lines.append(f"GenTL          none usable: {cam['detail']}")
    state = f"{len(cache['engines'])} engine(s)" if cache["exists"] else "not created yet"
    lines.append(f"engine cache   {cache['folder']} ({state})")
    auto = report["backend_auto"]
    lines.append(f"backend auto   {auto['backend']}: {auto['why']}")
    lines.append(f"malloc         {report['malloc']}")
    lines.append(f"frame memory   {report['frame_memory']}")
    lines.append(f"registration   {report['registration']}")
    for notice in report["model_terms"]:
        lines.append(f"model terms    {notice['line']}")
    if "parity" in report:
        lines.append(f"parity         {report['parity']['detail']}")
    return lines


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when the station cannot run here (or parity failed)."""
    report = doctor_report(args.station, args.parity, args.data_dir, args.recipes_dir)
    for line in _lines(report):
        print(line)
    checks = [Check(**c) for c in report["preflight"]]
    print("pre-flight:")
    for check in checks:
        print(f"  {check.line()}")
    blocked = [c for c in checks if c.fatal and not c.ok]
    verdict = f"{len(blocked)} problem(s) stop the station" if blocked else "ok"
    print(f"pre-flight: {verdict}")
    if args.json:
        print(json.dumps(report, sort_keys=True))
    failed_parity = "parity" in report and not report["parity"]["ok"]
    return 1 if blocked or failed_parity else 0
