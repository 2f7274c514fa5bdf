"""Stock levels per item."""


class Stock:
    def __init__(self):
        self._levels = {}

    def add(self, item, n):
        if n <= 0:
            raise ValueError("add a positive amount")
        self._levels[item] = self._levels.get(item, 0) + n

    def remove(self, item, n):
        have = self._levels.get(item, 0)
        self._levels[item] = have - n

    def level(self, item):
        return self._levels.get(item, 0)
