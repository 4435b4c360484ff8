"""The error kinds a user can cause, so entry points can report them in one line."""


class ConfigError(ValueError):
    """A value in params.yaml is unknown, missing or out of range; the message names the key."""


class DataError(RuntimeError):
    """An input file is missing, corrupt or unreachable; the message names the file."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite: the recipe (usually its learning rate) is unstable here.

    Raised instead of carrying on, so no model trained into NaN weights is ever saved or reported;
    the message names what was being trained, the step and the learning rate."""
