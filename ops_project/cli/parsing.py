"""One shape for every command's ``--help``: plain text, a description, every flag explained, the exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def group(sub, name: str, summary: str):
    """A command group (``backups``, ``queries``): its help has its summary and the exit codes; returns the
    sub-parsers action its commands are added to."""
    parser = sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".",
                            epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def write_json(path: str | Path, doc) -> None:
    """``doc`` as JSON at ``path``, written beside and moved into place: never a half-written file."""
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out)


def root(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, epilog=exits.EPILOG, formatter_class=_Formatter)
