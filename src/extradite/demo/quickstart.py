"""The main job, end to end: generate typed proxies for a demo target and call through them.

    python -m extradite.demo.quickstart

1. runs `extradite-gen extradite.demo.counter:Counter` into a temporary directory
   (the target is introspected in a throwaway child; this process never imports it);
2. imports the generated proxy and calls through it (mypy would check these calls);
3. does the same through the dynamic path, `extradite("extradite.demo.counter:Counter")`;
4. shows that the protected module never entered this interpreter.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time

TARGET = "extradite.demo.counter:Counter"


def main() -> int:
    from extradite import extradite

    with tempfile.TemporaryDirectory(prefix="extradite-quickstart-") as out:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "extradite.gen", TARGET, "-o", out],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        print(f"1. extradite-gen {TARGET} -o {out}  ({(time.perf_counter() - started) * 1000:.0f} ms)")
        for line in done.stdout.splitlines():
            print(f"   {line}")

        sys.path.insert(0, out)
        try:
            generated = importlib.import_module("extradite_demo_counter_xdproxy")
        finally:
            sys.path.remove(out)
        Counter = generated.Counter
        counter = Counter(3, step=2)
        print("2. generated proxy:")
        print(f"   Counter(3, step=2).increment()    -> {counter.increment()}")
        print(f"   counter.increment(10)             -> {counter.increment(10)}")
        print(f"   counter.increment_batch([(1,), (2,), ()]) -> {counter.increment_batch([(1,), (2,), ()])}")
        print(f"   counter.describe(prefix='at ')    -> {counter.describe(prefix='at ')!r}")
        print(f"   Counter.parse('ff', 16)           -> {Counter.parse('ff', 16)}")
        print(f"   repr(counter.copy())              -> {counter.copy()!r}  (a proxy: copy() returns a Counter)")
        counter.close()
        Counter.close()

    RemoteCounter = extradite(TARGET)
    try:
        remote = RemoteCounter(5)
        print("3. dynamic proxy:")
        print(f"   RemoteCounter(5).increment(2)     -> {remote.increment(2)}")
        print(f"   remote.increment.batch(...)       -> {remote.increment.batch([([1], {}), ([2], {})])}")
        print(f"   remote.value, len(remote)         -> {remote.value}, {len(remote)}")
    finally:
        RemoteCounter.close()

    leaked = [name for name in sys.modules if name.startswith("extradite.demo.counter")]
    print(f"4. extradite.demo.counter imported here: {'yes: ' + str(leaked) if leaked else 'no'}")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
