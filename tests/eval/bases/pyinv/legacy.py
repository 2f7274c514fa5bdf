"""The old CSV import, still used by the nightly job."""


def import_rows(lines):
    return [line.split(",") for line in lines if line.strip()]
