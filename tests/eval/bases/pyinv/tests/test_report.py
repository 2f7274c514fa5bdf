import unittest

from inventory import Stock
from inventory.report import report


class ReportTest(unittest.TestCase):
    def test_report(self):
        s = Stock()
        s.add("fig", 2)
        self.assertEqual(report(s, ["fig", "kiwi"]), "fig: 2\nkiwi: 0")
