"""Small statistics helpers."""


def mean(xs):
    """The arithmetic mean of a non-empty list."""
    if not xs:
        raise ValueError("mean of an empty list")
    return sum(xs) / len(xs)


def median(xs):
    """The median of a non-empty list."""
    if not xs:
        raise ValueError("median of an empty list")
    s = sorted(xs)
    return s[len(s) // 2]


def spread(xs):
    """The largest minus the smallest value."""
    return max(xs) - min(xs)
