"""`extradite-env` (or `python -m extradite.envs`): show, locate and delete cached environments.

    extradite-env list [--json]          key, Python, size, last use, requirements, interpreter
    extradite-env path [KEY]             the cache directory, or one environment's directory
    extradite-env prune --all | --older-than DAYS | KEY...

The environments are the ones `requirements=` builds (see `extradite._envs`); a
deleted one is rebuilt the next time it is asked for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _envs

__all__ = ["main"]

_EPILOG = """\
The cache lies in $EXTRADITE_ENV_DIR, else $XDG_CACHE_HOME/extradite/envs (~/.cache/extradite/envs).
A KEY may be shortened to any unique prefix.

exit codes:
  0  success
  2  bad command line, or a KEY that names no environment (or several)
"""


class _UsageError(Exception):
    pass


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # not reached


def _age(seconds: float) -> str:
    if seconds < 120:
        return "just now"
    for unit, span in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * span or unit == "minutes":
            return f"{seconds / span:.0f} {unit} ago"
    return "just now"  # not reached


def _find(prefix: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    matches = [env for env in found if env["key"].startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _UsageError(f"no cached environment has a key starting with {prefix!r} "
                          "(see `extradite-env list`)")
    raise _UsageError(f"{prefix!r} is the start of {len(matches)} keys ({', '.join(e['key'] for e in matches)}); "
                      "give more of it")


def _list(as_json: bool) -> int:
    now = time.time()
    found = [dict(env, size=_envs.size_of(env["path"])) for env in _envs.environments()]
    if as_json:
        print(json.dumps(found, indent=1))
        return 0
    if not found:
        print(f"no cached environments in {_envs.root()}")
        return 0
    print(f"{'KEY':<16}  {'PYTHON':<8}  {'SIZE':>9}  {'LAST USED':<14}  REQUIREMENTS")
    for env in found:
        requirements = " ".join(env.get("requirements", [])) or "(none)"
        print(f"{env['key']:<16}  {env.get('version', '?'):<8}  {_size(env['size']):>9}  "
              f"{_age(now - env['last_used']):<14}  {requirements}  (from {env.get('python', '?')})")
    total = sum(env["size"] for env in found)
    print(f"{len(found)} environment(s), {_size(total)} in {_envs.root()}")
    for path in _envs.leftovers():
        print(f"unfinished build or deletion (removed by prune --all): {path}")
    return 0


def _path(key: str | None) -> int:
    if key is None:
        print(_envs.root())
    else:
        print(_find(key, list(_envs.environments()))["path"])
    return 0


def _prune(keys: Sequence[str], everything: bool, older_than: float | None) -> int:
    chosen = [bool(keys), everything, older_than is not None]
    if sum(chosen) != 1:
        raise _UsageError("say what to prune: --all, --older-than DAYS, or one or more KEYs (only one of these)")
    found = list(_envs.environments())
    if everything:
        doomed = found
    elif older_than is not None:
        if older_than < 0:
            raise _UsageError(f"--older-than must be a number of days >= 0, not {older_than:g}")
        limit = time.time() - older_than * 86400
        doomed = [env for env in found if env["last_used"] < limit]
    else:
        doomed = list({env["key"]: env for env in (_find(key, found) for key in keys)}.values())
    freed = 0
    for env in doomed:
        size = _envs.size_of(env["path"])
        if _envs.remove(env["key"]):
            freed += size
            print(f"removed {env['key']}  {' '.join(env.get('requirements', [])) or '(none)'}  "
                  f"(Python {env.get('version', '?')}, {_size(size)})")
    if everything:
        for path in _envs.leftovers():
            _envs.remove_leftover(path)
    print(f"{len(doomed)} environment(s) removed, {_size(freed)} freed")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extradite-env", description="Show, locate and delete the environments requirements= builds.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,path,prune}")
    listing = commands.add_parser("list", help="the cached environments: key, Python, size, last use, requirements")
    listing.add_argument("--json", action="store_true", help="one JSON document with every field")
    path = commands.add_parser("path", help="the cache directory, or the directory of environment KEY")
    path.add_argument("key", nargs="?", metavar="KEY")
    prune = commands.add_parser("prune", help="delete environments (rebuilt when next asked for)")
    prune.add_argument("keys", nargs="*", metavar="KEY", help="these environments")
    prune.add_argument("--all", action="store_true", help="every environment (and unfinished builds)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="those last used more than DAYS days ago")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(args.json)
        if args.command == "path":
            return _path(args.key)
        return _prune(args.keys, args.all, args.older_than)
    except _UsageError as exc:
        print(f"extradite-env: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
