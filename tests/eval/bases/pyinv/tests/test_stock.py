import unittest

from inventory import Stock


class StockTest(unittest.TestCase):
    def test_add(self):
        s = Stock()
        s.add("apple", 3)
        s.add("apple", 2)
        self.assertEqual(s.level("apple"), 5)

    def test_add_rejects_zero(self):
        with self.assertRaises(ValueError):
            Stock().add("apple", 0)

    def test_remove(self):
        s = Stock()
        s.add("pear", 4)
        s.remove("pear", 1)
        self.assertEqual(s.level("pear"), 3)

    def test_remove_more_than_there_is(self):
        s = Stock()
        s.add("pear", 1)
        with self.assertRaises(ValueError):
            s.remove("pear", 2)
        self.assertEqual(s.level("pear"), 1)
