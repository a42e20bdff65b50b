"""A target whose import never ends (a loop in Python): importing it must be left to a child."""

while True:
    pass


class Never:
    pass
