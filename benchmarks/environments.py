"""Cold time to the first call with `requirements=`: a new environment (uv, pip), a cached one, none.

Every sample is a fresh interpreter that times, from before `import extradite` to the
first call's return: `extradite("extradite_bench_trivial:Trivial", requirements=...)`,
construction and `ping()`. The cases, side by side in one run:

    plain          no requirements (the ordinary cold start)
    cached         the environment exists (the cache hit path: a stat and a touch)
    new_uv         the environment does not exist; uv builds it
    new_pip        the same with venv + pip (EXTRADITE_ENV_INSTALLER=pip)
    new_uv_empty   requirements=[] with uv: what making the virtual environment costs alone

"New" means a fresh cache directory per sample while the installer's own download cache
is warm (one untimed build first): the usual case after a package was fetched once.
It reports; it never asserts a time.

    python benchmarks/environments.py [--repetitions 5] [--requirements packaging==24.0 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = Path(__file__).resolve().parent / "targets"

_SAMPLE = """
import sys, time
started = time.perf_counter()
from extradite import extradite
requirements = {requirements!r}
Trivial = extradite("extradite_bench_trivial:Trivial", requirements=requirements)
assert Trivial().ping() == 1
elapsed = time.perf_counter() - started
Trivial.close()
print(elapsed)
"""


def sample(requirements: list[str] | None, cache: str, installer: str | None) -> float:
    """Seconds from `import extradite` to the first call's return, in a fresh interpreter."""
    env = dict(os.environ, EXTRADITE_ENV_DIR=cache,
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(TARGETS)]))
    env.pop("EXTRADITE_ENV_INSTALLER", None)
    if installer is not None:
        env["EXTRADITE_ENV_INSTALLER"] = installer
    done = subprocess.run([sys.executable, "-c", _SAMPLE.format(requirements=requirements)], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"a sample failed ({requirements=}, {installer=}):\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5, help="samples per case (default 5)")
    parser.add_argument("--requirements", nargs="+", default=["packaging==24.0"], metavar="REQ",
                        help="what the new and cached environments hold (default: packaging==24.0)")
    parser.add_argument("--json-output", metavar="FILE", help="write every sample as JSON")
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from extradite._envs import installer

    has_uv = installer()[0] == "uv"
    work = tempfile.mkdtemp(prefix="extradite-envs-bench-")
    try:
        cached = os.path.join(work, "cached")
        for tool in (["uv"] if has_uv else []) + ["pip"]:  # warm the installers' download caches
            sample(options.requirements, os.path.join(work, f"warm-{tool}"), tool)
        sample(options.requirements, cached, None)  # the cached case's environment

        def fresh(tag: str, index: int) -> str:
            return os.path.join(work, f"{tag}-{index}")

        cases: dict[str, list[float]] = {"plain": [], "cached": [], "new_uv": [], "new_pip": [], "new_uv_empty": []}
        for index in range(options.repetitions):  # interleaved: a slow moment hits every case alike
            cases["plain"].append(sample(None, cached, None))
            cases["cached"].append(sample(options.requirements, cached, None))
            if has_uv:
                cases["new_uv"].append(sample(options.requirements, fresh("uv", index), "uv"))
                cases["new_uv_empty"].append(sample([], fresh("uv-empty", index), "uv"))
            cases["new_pip"].append(sample(options.requirements, fresh("pip", index), "pip"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    version = ".".join(map(str, sys.version_info[:3]))
    print(f"Python {version}, {os.cpu_count()} CPUs, requirements={options.requirements}, "
          f"{options.repetitions} samples per case (fresh interpreter each; import + extradite() + first call)")
    print(f"{'case':<14}{'median':>12}{'min':>12}{'max':>12}")
    for name, samples in cases.items():
        if not samples:
            print(f"{name:<14}{'(uv is not installed)':>36}")
            continue
        print(f"{name:<14}{statistics.median(samples) * 1e3:>10.1f}ms{min(samples) * 1e3:>10.1f}ms"
              f"{max(samples) * 1e3:>10.1f}ms")
    if options.json_output:
        Path(options.json_output).write_text(json.dumps(
            {"python": version, "requirements": options.requirements, "cases": cases}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
