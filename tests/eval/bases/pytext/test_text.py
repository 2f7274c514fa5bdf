import unittest

import text


class WordCountTest(unittest.TestCase):
    def test_word_count(self):
        self.assertEqual(text.word_count("a b  c"), 3)


if __name__ == "__main__":
    unittest.main()
