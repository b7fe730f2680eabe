"""``cnnzoo data list`` and ``cnnzoo data verify``: where the datasets are, and whether their files
are right."""

from __future__ import annotations

import argparse

from cnnzoo.commands import options
from cnnzoo.console import print_json
from cnnzoo.errors import ConfigError


def _print_report(report: dict) -> None:
    if report.get("folder") is None:
        print(
            f"{report['name']}: not found (`cnnzoo data list` shows where cnnzoo looked; a first "
            f"`cnnzoo train --dataset {report['name']}` downloads it)"
        )
        return
    print(f"{report['name']} in {report['folder']}: {'OK' if report.get('ok') else 'PROBLEMS'}")
    for item in report.get("files", []):
        print(f"  {item['file']:<28} {item['status']:<11} {item.get('detail') or ''}")
    parse = report.get("parse") or {}
    if parse.get("ok"):
        print(f"  parses: {parse['train']:,} train / {parse['test']:,} test images of "
              f"{'×'.join(map(str, parse['image_shape']))}, {parse['classes']} classes")
    elif parse:
        print(f"  does not parse: {parse.get('error')}")


def cmd_data(args: argparse.Namespace) -> int:
    from cnnzoo.data.names import FOLDER_PREFIX
    from cnnzoo.data.sources import describe_sources, verify_dataset

    if args.name and args.name.startswith(FOLDER_PREFIX):
        raise ConfigError(f"data {args.action} {args.name}: a folder of your own has no published "
                          "files or checksums to look for; `cnnzoo train --dataset "
                          f"{args.name}` reads it and names any image it cannot decode")
    if args.action == "list":
        if args.name:
            raise ConfigError(f"data list takes no NAME (got {args.name!r}); it lists every data "
                              f"set; `cnnzoo data verify {args.name}` checks one")
        rows = describe_sources(args.data_dir)
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                where = row.get("found") or f"not found (looked in {', '.join(row['searched'])})"
                print(f"{row['name']:<15} {where}")
        return 0
    names = (
        [args.name]
        if args.name
        else [row["name"] for row in describe_sources(args.data_dir) if row.get("found")]
    )
    reports = [verify_dataset(name, args.data_dir) for name in names]
    if args.json:
        print_json(reports)
    else:
        for report in reports:
            _print_report(report)
    return 0 if all(report.get("ok") for report in reports) else 1


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("data", help="show where datasets are found, verify their checksums",
                            description="`data list`: where each dataset was found. `data verify "
                                        "[NAME]`: checksums and a parse check of the files found.")
    p.add_argument("action", choices=("list", "verify"))
    p.add_argument("name", nargs="?", help="dataset to verify (default: every one found)")
    options.add(p, "data_dir", help="also look here")
    options.add(p, "json")
    p.set_defaults(run=cmd_data)
