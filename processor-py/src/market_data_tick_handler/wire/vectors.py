"""Write proto/vectors/python/<case>.bin for every case of proto/vectors/cases.json.

python -m market_data_tick_handler.wire.vectors [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .codec import encode_frame, rows_to_columns
from .schema import schema_path


def cases_path() -> Path:
    return schema_path().parent / "vectors" / "cases.json"


def load_cases(path: Path | None = None) -> dict[str, dict]:
    return json.loads((path or cases_path()).read_text())["cases"]


def encode_case(case: dict) -> bytes:
    header = case["header"]
    return encode_frame(header, rows_to_columns(header["type"], header, case["rows"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=cases_path().parent / "python")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, case in load_cases().items():
        (args.out / f"{name}.bin").write_bytes(encode_case(case))
        print(f"wrote {args.out / name}.bin")


if __name__ == "__main__":
    main()
