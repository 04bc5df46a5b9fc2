"""One shape for every command's ``--help``: plain text, a description, every flag explained, the exit codes."""

from __future__ import annotations

import argparse

from ops_project.cli import exits


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and the exit-code epilog keep their lines; a flag's real default is shown once."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command whose help has its summary, an optional longer description, and the exit codes."""
    sentence = summary[:1].upper() + summary[1:] + "."
    return sub.add_parser(name, help=summary, description=f"{sentence}\n\n{description}" if description else sentence,
                          epilog=exits.EPILOG, formatter_class=_Formatter)


def root(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, epilog=exits.EPILOG, formatter_class=_Formatter)
