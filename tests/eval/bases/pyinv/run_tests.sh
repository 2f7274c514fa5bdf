#!/bin/sh
# The project's test runner: every test under tests/.
exec python3 -m unittest discover -s tests -t . -q
