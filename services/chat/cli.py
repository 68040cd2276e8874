"""Placeholder: this module's subcommands are being written."""


def register(subparsers) -> None:
    """Add this module's subcommands to the `rlaif` parser."""
