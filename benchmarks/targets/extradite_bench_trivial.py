"""The trivial benchmark target: no imports, one method (start-up regimes measure extradite, not the target)."""


class Trivial:
    def ping(self) -> int:
        return 1
