"""Errors raised at the boundaries (CLI, files). Each carries the exit code the CLI uses."""


class DigitlabError(Exception):
    """A problem the user can fix; the message names the problem and the remedy."""

    exit_code = 1


class UsageError(DigitlabError):
    """Bad config, bad flag, missing input: exit 2, nothing written."""

    exit_code = 2


class ConfigError(UsageError):
    pass


class DataError(UsageError):
    """A dataset that is missing, corrupt or not the one asked for."""


class DataNotFound(DataError):
    """Nothing usable was found and nothing could be downloaded."""

    def __init__(self, message: str, dataset: str):
        super().__init__(message)
        self.dataset = dataset


class CheckpointError(DigitlabError):
    """A checkpoint or run directory that cannot be read."""

    exit_code = 2


class TrainingError(DigitlabError):
    """Training went wrong at run time (for example a NaN loss)."""
