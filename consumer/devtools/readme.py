"""`make readme`: rewrite README.md's settings table from the declarations in consumer.config."""

from __future__ import annotations

import sys
from pathlib import Path

from consumer.config import markdown_table

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
