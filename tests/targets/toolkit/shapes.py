"""A submodule imported by its package."""


def square(x: float) -> float:
    return x * x


class Box:
    def __init__(self, side: float) -> None:
        self.side = side

    def area(self) -> float:
        return self.side * self.side
