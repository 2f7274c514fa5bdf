"""Text reports of a stock."""


def report(stock, items):
    return "\n".join("%s: %d" % (item, stock.level(item)) for item in items)
