"""extradite-gen: the build-time compiler of typed proxies (needs the `gen` extra).

Pipeline and entry points live in `extradite.gen.cli` (`main`, `generate`).
This package file imports nothing: the introspection child runs
`python -m extradite.gen.introspect`, which must not load jinja2 or libcst.
The runtime never imports this package.
"""
