"""`styledrop info`: what a style folder (or adapter file) holds."""

from __future__ import annotations

import argparse
import json

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a style folder holds")
    p.add_argument("style")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from ..adapter_files import read_adapter_file

    tensors, meta = read_adapter_file(args.style)
    count = sum(t.numel() for t in tensors.values())
    print(json.dumps({"kind": meta.kind, "parameters": count, "base_model": meta.base_model,
                      "content": meta.content, "descriptor": meta.descriptor, "steps": meta.steps,
                      "adapter": meta.adapter, "created": meta.created}, indent=2))
    return 0
