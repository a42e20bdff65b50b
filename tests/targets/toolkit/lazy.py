"""A submodule its package does not import."""

NAME = "lazy"


def hello(who: str) -> str:
    return f"hello {who}"
