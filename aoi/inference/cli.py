"""``aoi build-engine`` and ``aoi doctor``: the station's TensorRT and hardware commands.

Wired into ``aoi`` by :func:`add_build_engine_parser` and :func:`add_doctor_parser`. Like the
rest of the CLI: progress goes to stderr, results to stdout, ``--json`` puts one JSON object on
the last line of stdout, and a known failure (an :class:`aoi.errors.AoiError`) ends the command
with its message through ``aoi``'s main.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from aoi.config import load_station_config
from aoi.errors import AoiError, CameraError, ModelError
from aoi.inference import engine_settings
from aoi.inference.probe import Finding, choose_backend, probe_gpu, probe_ort_cuda, probe_tensorrt
from aoi.inference.tensorrt.cache import list_engines
from aoi.recipe import find_recipe, load_recipe, recipes_dir

_NVIDIA_SMI_FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total")


def _say(text: str) -> None:
    print(f"[aoi] {text}", file=sys.stderr, flush=True)


# --- build-engine ----------------------------------------------------------------------------


def add_build_engine_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``aoi build-engine --recipe NAME [--recipe NAME ...] [--all] [--force] [--station TOML]``."""
    p = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engines of recipes ahead of time (cached; see docs/tensorrt.md)",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="recipe name (shipped) or path to a .toml; repeat for several",
    )
    p.add_argument("--all", action="store_true", help="every recipe in the shipped recipes folder")
    p.add_argument("--force", action="store_true", help="rebuild even where the cache is current")
    p.add_argument("--station", default=None, help="station config TOML ([inference] engine_dir)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    p.set_defaults(func=cmd_build_engine)
    return p


def cmd_build_engine(args: argparse.Namespace) -> int:
    from aoi.inference.tensorrt.cuda_mem import gpu_info, set_device
    from aoi.inference.tensorrt.engine import engine_target, ensure_engine, import_tensorrt

    names = list(args.recipe)
    if args.all:
        names += [str(p) for p in sorted(recipes_dir().glob("*.toml"))]
    if not names:
        msg = "build-engine needs --recipe NAME (one or more) or --all"
        raise ModelError(msg)
    settings = engine_settings(load_station_config(args.station).inference)
    recipes = [load_recipe(find_recipe(n)) for n in dict.fromkeys(names)]
    trt = import_tensorrt()
    set_device(settings.device)
    gpu = gpu_info(settings.device)
    _say(f"TensorRT {trt.__version__} on {gpu.name} (sm {gpu.compute_capability})")
    _say(f"engine cache {settings.engine_dir}")
    done: dict[Path, str] = {}
    rows = []
    for loaded in recipes:
        target = engine_target(loaded, trt.__version__, gpu, settings)
        for warning in target.warnings:
            _say(f"warning: {warning}")
        engine = target.paths.engine
        if engine in done:
            state = f"shared with {done[engine]}"
        else:
            outcome = ensure_engine(
                loaded,
                target,
                settings,
                force=args.force,
                progress=lambda text, name=loaded.name: _say(f"{name}: {text}"),
            )
            state = f"built in {outcome.build_seconds:.0f} s" if outcome.built else "cached"
            if outcome.built:
                _say(f"{loaded.name}: {outcome.decision.reason}")
            for note in outcome.notes:
                _say(f"{loaded.name}: {note}")
            done[engine] = loaded.name
        rows.append(
            {
                "recipe": loaded.name,
                "precision": target.precision.precision,
                "profile": target.profile.as_dict(),
                "engine": str(engine),
                "state": state,
            }
        )
        print(f"{loaded.name:<24} {target.precision.precision:<5} {state:<24} {engine.name}")
    if args.json:
        print(json.dumps({"tensorrt": trt.__version__, "gpu": gpu.name, "engines": rows}))
    return 0


# --- doctor ------------------------------------------------------------------------------------


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


def _cuda() -> dict[str, Any]:
    from aoi.inference.tensorrt import cuda_mem

    out: dict[str, Any] = {}
    try:
        cuda_mem.cudart()
    except cuda_mem.CudaUnavailable as err:
        return {"cuda_python": str(err)}
    try:
        from cuda import bindings

        out["cuda_python"] = str(bindings.__version__)
    except ImportError:
        out["cuda_python"] = "installed (a version before cuda.bindings)"
    for field, query in (
        ("driver", cuda_mem.driver_version),
        ("runtime", cuda_mem.runtime_version),
    ):
        try:
            out[field] = query()
        except cuda_mem.CudaError as err:
            out[field] = f"unknown: {err}"
    if out.get("driver") == "0.0":
        out["driver"] = "none: no NVIDIA driver is loaded"
    return out


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
    from aoi.inference.tensorrt.calibration import synthetic_batches

    loaded = load_recipe(find_recipe(recipe))
    settings = engine_settings(load_station_config(station_path).inference)
    with ExitStack() as stack:
        ort = stack.enter_context(
            OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile)
        )
        trt_backend = stack.enter_context(TensorRTBackend(loaded, settings))
        report = run_parity(
            ort, trt_backend, synthetic_batches(loaded, boards=4), loaded.recipe.model.precision
        )
    return {"ok": report.passed, "detail": report.text()}


def doctor_report(station_path: str | None, parity: str | None) -> dict[str, Any]:
    """Everything ``aoi doctor`` reports, as plain data."""
    import onnxruntime as ort

    station = load_station_config(station_path)
    trt, gpu, ort_cuda = probe_tensorrt(), probe_gpu(), probe_ort_cuda()
    backend, why = choose_backend("auto", tensorrt=trt, gpu=gpu, ort_cuda=ort_cuda)
    report: dict[str, Any] = {
        "tensorrt": {"ok": trt.ok, "detail": trt.detail},
        "cuda": _cuda(),
        "gpu": {"ok": gpu.ok, "detail": gpu.detail},
        "nvidia_smi": _nvidia_smi(),
        "onnxruntime": {"version": ort.__version__, "providers": ort.get_available_providers()},
        "genicam": _genicam(list(station.camera.cti_paths)),
        "engine_cache": _engine_cache(engine_settings(station.inference).engine_dir),
        "backend_auto": {"backend": backend, "why": why},
    }
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
    if "parity" in report:
        lines.append(f"parity         {report['parity']['detail']}")
    return lines


def cmd_doctor(args: argparse.Namespace) -> int:
    report = doctor_report(args.station, args.parity)
    for line in _lines(report):
        print(line)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 1 if "parity" in report and not report["parity"]["ok"] else 0
