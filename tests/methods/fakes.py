"""Test doubles shared by the search tests."""

import json


class MemoryJournal:
    """The run-directory Journal's interface, in memory, with a JSON round trip per line."""

    def __init__(self, records=()):
        self._lines = [json.dumps(r) for r in records]

    def append(self, record):
        self._lines.append(json.dumps(record))

    def records(self):
        return [json.loads(line) for line in self._lines]


class FileJournal:
    """A JSON-lines file, as the run directory keeps it."""

    def __init__(self, path):
        self.path = path

    def append(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self):
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


class Counting:
    """Wraps an evaluation function and remembers every plan it was called with."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, plan):
        self.calls.append(plan)
        return self.fn(plan)
