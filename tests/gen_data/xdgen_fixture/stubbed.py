"""A module whose annotations live only in the stub beside it (as for C extensions)."""


class Stubbed:
    def scale(self, value, factor=2):  # type: ignore[no-untyped-def]
        return value * factor

    def label(self, key):  # type: ignore[no-untyped-def]
        return f"<{key}>"
