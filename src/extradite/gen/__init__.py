"""extradite-gen: the build-time compiler of typed proxies (needs the `gen` extra).

Pipeline and entry points live in `extradite.gen.cli` (`main`, `generate`).
This package file imports nothing: the introspection child runs
`python -m extradite.gen.introspect`, which must not load jinja2 or libcst.
The runtime never imports this package.

A target is a class (`pkg.mod:Cls`), a function (`pkg.mod:func`) or a whole module
(`pkg.mod`: its public functions, forwarded through one lazily bound
`generated_support.GeneratedModule`, and its public classes as class targets
sharing that module's child).

Modules, in the order a run uses them: `cli` (command line, configuration,
pipeline), `introspect` (the child that describes a target), `build` (the
interface model) with `scope` (stubs and sources parsed), `locate` (where they
are), `resolve` (what a name stands for), `annotation` (one form for written and
runtime annotations), `emit` (annotation text, imports, TypeVars) and `forwarding`
(method signatures and bodies); then `model`, `render` (Jinja2) and `write`.
"""
