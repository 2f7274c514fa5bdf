"""Text helpers."""
import re


def slugify(title):
    """'Hello, World!' -> 'hello-world'."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)


def word_count(text):
    return len(text.split())


def truncate(text, n):
    """At most n characters, ending in '...' when cut."""
    if len(text) <= n:
        return text
    return text[: n - 3] + "..."
