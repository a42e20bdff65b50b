class Broken:
    def oops(self) -> None
        pass
