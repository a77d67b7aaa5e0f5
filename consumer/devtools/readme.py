"""`make readme`: rewrite README.md's settings tables from the declarations in consumer.config."""

from __future__ import annotations

import sys
from pathlib import Path

from consumer.config import COMMANDS, markdown_table


def markers(command: str) -> tuple[str, str]:
    name = "settings" if command == "run" else f"settings:{command}"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    text = path.read_text()
    for command, cls in COMMANDS.items():
        begin, end = markers(command)
        if begin not in text:
            continue
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{markdown_table(cls)}\n{end}{tail}"
    path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
