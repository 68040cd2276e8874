"""Errors raised by the trainer, one tree so callers can catch by intent.

    TrainerError
    ├── ConfigError             a config field has a bad value (names the fix)
    ├── PromptsError            the prompts file is missing, empty or malformed
    ├── PairsError              a DPO pairs file is missing, empty or malformed
    ├── JudgeError              the judge could not give usable rewards
    │   ├── JudgeUnavailableError   every judge URL stayed down too long
    │   └── JudgeProtocolError      the judge refused the request (4xx)
    └── InvalidRateExceededError    too many responses got no valid score

`ConfigError` is also a `ValueError` so that argument-parsing code that
expects one keeps working.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of every error the trainer raises on purpose."""


class ConfigError(TrainerError, ValueError):
    """A training config field has a value the trainer cannot use."""


class PromptsError(TrainerError):
    """The training prompts cannot be read."""


class PairsError(TrainerError):
    """A DPO preference-pairs file cannot be used for training."""


class JudgeError(TrainerError):
    """The judge did not produce usable scores."""


class JudgeUnavailableError(JudgeError):
    """Every judge URL stayed unreachable for longer than allowed."""


class JudgeProtocolError(JudgeError):
    """The judge rejected the request itself; retrying will not help."""


class InvalidRateExceededError(TrainerError):
    """The share of responses without a valid judge score passed the limit."""
