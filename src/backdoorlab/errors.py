"""The two error kinds a user can cause, so entry points can report them in one line."""


class ConfigError(ValueError):
    """A value in params.yaml is unknown, missing or out of range; the message names the key."""


class DataError(RuntimeError):
    """An input file is missing, corrupt or unreachable; the message names the file."""
