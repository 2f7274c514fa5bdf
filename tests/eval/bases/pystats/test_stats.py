import unittest

import stats


class MeanTest(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(stats.mean([1, 2, 3, 4]), 2.5)

    def test_mean_empty(self):
        with self.assertRaises(ValueError):
            stats.mean([])


class MedianTest(unittest.TestCase):
    def test_median_odd(self):
        self.assertEqual(stats.median([3, 1, 2]), 2)

    def test_median_even(self):
        self.assertEqual(stats.median([4, 1, 3, 2]), 2.5)
        self.assertEqual(stats.median([10, 20]), 15)

    def test_spread(self):
        self.assertEqual(stats.spread([5, 1, 9]), 8)


if __name__ == "__main__":
    unittest.main()
