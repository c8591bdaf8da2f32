"""The one exception type users see: its message is a single line naming the problem."""


class SynthError(ValueError):
    """Bad input or a bad file. The CLI prints ``error: <message>`` and exits with status 2."""
