"""fastrnn.show_config() and `fastrnn info`: what this process runs with and why."""
import os
import platform
import sys
from typing import Any, Optional


def _version(name):
    import importlib

    try:
        return importlib.import_module(name).__version__
    except Exception:
        return None


def config():
    """The configuration as nested dicts (show_config(mode='dicts'))."""
    import fastrnn
    from fastrnn import _threads
    from fastrnn._kernels import _stack, profile
    from fastrnn._kernels.plan import Plan, default_isa

    isa = default_isa()
    blas = []
    for lib in _threads._controller().info():
        blas.append({k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                             "architecture", "threading_layer", "filepath")})
    found = profile.lookup(isa)
    try:
        import warnings
        with warnings.catch_warnings():
            # the profile's state is reported below, not warned about
            warnings.simplefilter("ignore")
            plan = Plan.default()
        plan_fields = {k: getattr(plan, k) for k in ("isa", "fused", "fused_max_batch",
                                                     "fused_x_min_batch", "cache_bytes",
                                                     "split_min_hidden", "chunk_elements")}
        # per family, for models whose W_hh exceeds cache_bytes (None: fused_max_batch)
        streamed = plan.streamed_max_batch
        plan_fields["streamed_max_batch"] = dict(streamed) if streamed else None
        plan_info = dict(plan_fields, source=plan.source)
    except ValueError as exc:  # a bad FASTRNN_* variable: say so, do not fail the report
        plan_info = {"error": str(exc)}
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith("FASTRNN_") or k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                 "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return {
        "fastrnn": {"version": fastrnn.__version__, "path": os.path.dirname(fastrnn.__file__)},
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "dependencies": {"numpy": _version("numpy"), "scipy": _version("scipy"),
                         "threadpoolctl": _version("threadpoolctl")},
        "cpu": {"model": profile.cpu_model(), "machine": platform.machine(),
                "cores": os.cpu_count(), "usable_cores": _threads.usable_cpus(),
                "cpu_quota": _threads.cpu_quota(),
                "isa": isa, "best_isa": profile.hardware_isa() or isa},
        "blas": blas,
        "threads": {"fastrnn": fastrnn.get_num_threads(),
                    "kernel_split": _stack.get_kernel_threads(),
                    "blas": _threads._get_blas_threads()},
        "plan": plan_info,
        "profile": {"path": found.path, "state": found.state, "reason": found.reason,
                    "values": found.values,
                    "created": (found.data or {}).get("created"),
                    "description": found.describe()},
        "environment": env,
    }


def render(cfg):
    """The text show_config() prints."""
    from fastrnn._threads import quota_runs_alone

    lines = [f"fastrnn {cfg['fastrnn']['version']} ({cfg['fastrnn']['path']})",
             f"python {cfg['python']['version']} ({cfg['python']['executable']}); " +
             ", ".join(f"{k} {v or '-'}" for k, v in cfg["dependencies"].items())]
    cpu = cfg["cpu"]
    quota = cpu.get("cpu_quota")
    limit = "" if quota is None else f", a CPU quota of {quota:g}"
    lines.append(f"cpu: {cpu['model']} ({cpu['machine']}, {cpu['usable_cores']} of "
                 f"{cpu['cores']} cores usable{limit})")
    capped = " (capped by FASTRNN_ISA)" if cpu["isa"] != cpu["best_isa"] else ""
    lines.append(f"isa: {cpu['isa']} in force, {cpu['best_isa']} available{capped}")
    if not cfg["blas"]:
        lines.append("blas: none found by threadpoolctl")
    for lib in cfg["blas"]:
        lines.append(f"blas: {lib['internal_api']} {lib['version']} ({lib['architecture']}, "
                     f"{lib['num_threads']} thread(s), {lib['threading_layer']}) "
                     f"{lib['filepath']}")
    t = cfg["threads"]
    alone = (" (run alone: a CPU quota under 2)"
             if t["kernel_split"] >= 2 and quota_runs_alone(quota) else "")
    lines.append(f"threads: {t['fastrnn']} (step split: {t['kernel_split']}{alone}, "
                 f"blas: {t['blas']}; fastrnn.set_num_threads)")
    plan = cfg["plan"]
    if "error" in plan:
        lines.append(f"plan: not available: {plan['error']}")
    else:
        lines.append(f"plan (Plan.default(), from {plan['source']}):")
        for k, v in plan.items():
            if k == "streamed_max_batch" and v is None:
                lines.append(f"  {k} = None (as fused_max_batch)")
            elif k != "source":
                lines.append(f"  {k} = {v}")
    p = cfg["profile"]
    lines.append(f"profile: {p['description']}")
    if p["state"] == "used":
        lines.append(f"  created {p['created']}: " +
                     ", ".join(f"{k}={v}" for k, v in p["values"].items()))
    if cfg["environment"]:
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in
                                                cfg["environment"].items()))
    return "\n".join(lines)


def show_config(mode: str = "stdout") -> Optional[dict[str, Any]]:
    """Print what fastrnn runs with here, as ``fastrnn info`` does.

    Version, CPU and ISA (in force and best available), BLAS (threadpoolctl: library,
    version, threads, architecture), threads, the default `Plan` and where it came
    from, the tuned profile's path and state.

    Parameters
    ----------
    mode : {"stdout", "dicts"}, optional
        Print the report, or return the same as nested dicts.

    Returns
    -------
    dict or None
        The configuration with ``mode="dicts"``.

    Raises
    ------
    ValueError
        Another mode.

    Examples
    --------
    >>> cfg = fastrnn.show_config(mode="dicts")
    >>> cfg["fastrnn"]["version"] == fastrnn.__version__
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    cfg = config()
    if mode == "dicts":
        return cfg
    print(render(cfg))
    return None
