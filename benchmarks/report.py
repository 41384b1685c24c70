"""Put the benchmark tables that `make bench` just produced (.bench/*.json) into the README."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render() -> str:
    lines = [f"Measured by `make bench` on this machine ({os.cpu_count()} cores); each figure beside its baseline:", ""]
    lines += ["| measure | modelmeta | baseline | ratio |", "|---|---|---|---|"]
    files = sorted((ROOT / ".bench").glob("*.json"))
    if not files:
        sys.exit("no results in .bench/: run the benchmarks first (make bench)")
    for f in files:
        for row in json.loads(f.read_text()).get("rows", []):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"README.md has no {START} ... {END} section")
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), f"{START}\n{render()}\n{END}", text, flags=re.S)
    readme.write_text(new)
    print(f"README.md: benchmark table updated from {len(list((ROOT / '.bench').glob('*.json')))} result files")


if __name__ == "__main__":
    main()
