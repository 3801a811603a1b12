"""MkDocs hook: the command-line reference, generated from brushwork's own parser at build time,
so the page cannot drift from the commands (``<!-- brushwork-cli -->`` in docs/cli.md; configured in mkdocs.yml)."""

from __future__ import annotations

import argparse

MARKER = "<!-- brushwork-cli -->"


def _commands(parser: argparse.ArgumentParser, prefix: str = "brushwork"):
    """(command line, parser) for every command and subcommand, in the parser's order."""
    for action in parser._actions:  # argparse has no public walk over subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                has_children = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                if not has_children:
                    yield f"{prefix} {name}", sub
                yield from _commands(sub, f"{prefix} {name}")


def cli_reference() -> str:
    from brushwork.cli import build_parser

    parser = build_parser()
    parts = [f"```text\n{parser.format_help().rstrip()}\n```\n"]
    for command, sub in _commands(parser):
        sub.prog = command
        parts.append(f"## `{command}`\n\n```text\n{sub.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
