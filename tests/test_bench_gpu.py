"""bench/gpu.sh in its CI mode (a small network on the CPU, two steps): it says which backend
and device it used and prints every figure the GPU run records."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="bench/gpu.sh needs jax")
def test_gpu_sh_runs_on_cpu_and_prints_its_figures():
    env = {**os.environ, "GPU_SH_STEPS": "2", "GPU_SH_TIMEOUT": "200"}
    out = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--cpu"], cwd=REPO, env=env, check=False,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    device = rows[0]
    assert device["what"] == "device" and device["backend"] == "jax"
    assert device["platform"] == "cpu" and len(device["devices"]) == 2  # said, never hidden
    training = [r for r in rows if r["what"] == "training"]
    assert [(r["precision"], r["devices"]) for r in training] == [
        ("float32", 1), ("float32", 1), ("mixed", 1), ("float32", 2)]
    assert training[1]["batch"] > training[0]["batch"]
    assert all(r["targets_per_s"] > 0 and r["loss_finite"] and r["steps"] == 2 for r in training)
    generation = [r for r in rows if r["what"] == "generation"]
    assert sorted((r["step"], r["streams"]) for r in generation) == [
        ("jitted jax step", 1), ("jitted jax step", 64), ("numpy step", 1), ("numpy step", 64)]
    assert all(r["words_per_s"] > 0 for r in generation)
    assert rows[-1]["what"] == "peak device memory"  # None on a CPU


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="bench/gpu.sh needs jax")
def test_gpu_sh_refuses_to_measure_a_cpu_when_a_gpu_is_required():
    env = {**os.environ, "GPU_SH_STEPS": "1", "JAX_PLATFORMS": "cpu", "GPU_SH_REQUIRE_GPU": "1"}
    out = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh")], cwd=REPO, env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr[-3000:]
    assert "NO GPU: jax.devices() lists only cpu" in out.stderr
    assert '"platform": "cpu"' in out.stdout and '"what": "training"' not in out.stdout
