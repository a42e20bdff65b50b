"""What a target string names and which modules it keeps out of this interpreter.

    "pkg.mod:Cls"          -> ("pkg.mod", "Cls")
    "pkg.mod:Outer.Inner"  -> ("pkg.mod", "Outer.Inner")
    "pkg.mod:func"         -> ("pkg.mod", "func")      (any module attribute: a class, a function, ...)
    "pkg.mod"              -> "pkg.mod"                (a whole module: `parse_module`)

The protected tree of a target is its module and that module's submodules
(`pkg.mod`, `pkg.mod.*`); its parents (`pkg`) and siblings (`pkg.other`) may be
imported freely. `protect=` adds trees of the user's choosing. The runtime
(start refusal, both picklers, the after-start check) and the generator (its
CLI, the introspection child, annotation rewriting) all use this one module, so
they cannot disagree. Standard library only, nothing imported: `import extradite`
and the introspection child stay cheap.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["parse_target", "parse_module", "protected_tree", "tree_of", "in_tree", "loaded_tree", "loaded_modules",
           "check_protect", "refuse_loaded"]

TARGET_FORM = "'pkg.module:ClassName'"
MODULE_FORM = "'pkg.module'"


def _is_dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def parse_target(target: object) -> tuple[str, str]:
    """Split "pkg.mod:Cls" (or "pkg.mod:Outer.Inner") into module and attribute path."""
    if not isinstance(target, str):
        raise TypeError(f"target must be a string like {TARGET_FORM}, not {type(target).__name__}")
    module, sep, qualname = target.partition(":")
    if not sep:
        raise ValueError(f"target {target!r} has no ':'; write it as {TARGET_FORM}")
    if not module or not qualname:
        part = "module" if not module else "class"
        raise ValueError(f"target {target!r} has an empty {part} part; write it as {TARGET_FORM}")
    if not _is_dotted(module) or not _is_dotted(qualname) or ":" in qualname:
        raise ValueError(
            f"target {target!r} is not {TARGET_FORM} (dotted Python identifiers on each side)")
    return module, qualname


def parse_module(target: object) -> str:
    """Check "pkg.mod", a whole-module target (`import_isolated`): a dotted name with no ':'."""
    if not isinstance(target, str):
        raise TypeError(f"the module must be named by a string like {MODULE_FORM}, not {type(target).__name__}")
    if ":" in target:
        module = target.partition(":")[0]
        raise ValueError(f"{target!r} names a module attribute, not a module; import_isolated() takes a "
                         f"module name such as {module!r}, extradite() takes {target!r}")
    if not target or not _is_dotted(target):
        raise ValueError(f"{target!r} is not a module name like {MODULE_FORM} (dotted Python identifiers)")
    return target


def protected_tree(module: str) -> str:
    """The root of the tree a target in `module` protects: the module itself (and so its submodules)."""
    return module


def tree_of(name: str, trees: Iterable[str]) -> str | None:
    """The tree of `trees` that module `name` belongs to, or None.

    `pkg.mod` holds `pkg.mod` and `pkg.mod.sub`, never `pkg.module2` nor `pkg`.
    """
    for tree in trees:
        if name == tree or name.startswith(tree + "."):
            return tree
    return None


def in_tree(name: str, trees: Iterable[str]) -> bool:
    """Whether module `name` belongs to one of `trees`."""
    return tree_of(name, trees) is not None


def loaded_tree(trees: tuple[str, ...]) -> str | None:
    """The first of `trees` that is imported in this interpreter, or None.

    Checking each root is enough: importing any module of a tree imports its root
    first. This runs before every call of a session, so it stays a dict lookup per tree.
    """
    modules = sys.modules
    for tree in trees:
        if tree in modules:
            return tree
    return None


def loaded_modules(tree: str, limit: int = 5) -> list[str]:
    """Up to `limit` imported modules of `tree`, sorted (for error messages)."""
    return sorted(name for name in list(sys.modules) if name == tree or name.startswith(tree + "."))[:limit]


def check_protect(protect: object) -> tuple[str, ...]:
    """`protect=` validated: the module trees it names, sorted and without repeats."""
    if isinstance(protect, str) or not isinstance(protect, (tuple, list)):
        hint = f" (write protect=({protect!r},))" if isinstance(protect, str) else ""
        raise TypeError(f"protect must be a tuple or list of module names like ('myapp',), "
                        f"not {type(protect).__name__}{hint}")
    names: set[str] = set()
    for name in protect:
        if not isinstance(name, str):
            raise TypeError(f"protect must hold module names as strings, not {type(name).__name__} ({name!r})")
        if not name or not _is_dotted(name):
            raise ValueError(f"protect names {name!r}, which is not a dotted module name like 'myapp' or 'myapp.core'")
        if name == "extradite":
            raise ValueError("protect names 'extradite', the runtime itself, which this process always imports")
        names.add(name)
    return tuple(sorted(names))


def refuse_loaded(what: str, trees: Iterable[str], protect: tuple[str, ...]) -> None:
    """Refuse to start `what` while one of `trees` is imported here: they may only load in the child."""
    tree = loaded_tree(tuple(trees))
    if tree is None:
        return
    from ._errors import ExtraditeModuleLeakError  # only on refusal: this module imports nothing

    imported = ", ".join(loaded_modules(tree))
    if tree in protect:
        raise ExtraditeModuleLeakError(
            f"{what} refused: the module tree {tree!r}, which protect={protect!r} keeps out of this "
            f"interpreter, is already imported here ({imported}). Remove the import of {tree!r} from this "
            f"process, or leave {tree!r} out of protect=")
    raise ExtraditeModuleLeakError(
        f"{what} refused: the target module {tree!r} is already imported in this interpreter ({imported}), "
        f"but {tree!r} and its submodules may only ever be loaded in the child. Remove the import of {tree!r} "
        "from this process and use the proxy class instead (its parent package and sibling modules may "
        "stay imported)")

