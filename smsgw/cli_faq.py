"""`smsgw faq import FILE [--examples EXAMPLES] [--replace-examples] --db DB`: the agency's FAQ, checked
whole, replacing the stored one; the stored examples of its entries are kept unless --replace-examples."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .cli_checks import database_path


def cmd_faq_import(args: argparse.Namespace) -> int:
    from .faq_store import import_faq
    from .store.schema import shown

    database_path(args.db, create=True)
    # FaqImportError: "import refused, nothing loaded"
    faq, kept = asyncio.run(import_faq(args.file, args.db, args.examples, keep_examples=not args.replace_examples))
    if args.replace_examples:
        fate = "the previous FAQ and its examples replaced"
    else:
        fate = (f"the previous FAQ replaced; its examples kept where their entry id is still in the FAQ: "
                f"{kept.kept} of {kept.stored}; --replace-examples drops them")
    added = f", {kept.added} of them from {args.examples}" if args.examples is not None else ""
    print(f"imported into {shown(args.db)}: {len(faq.entries)} FAQ entries, {kept.total} examples{added} ({fate})",
          file=sys.stderr)
    return 0


def add_faq_commands(sub: argparse._SubParsersAction, *, db_help: str) -> None:
    """The `faq` command group."""
    faq = sub.add_parser("faq", help="the FAQ that answers BH HOI questions at once")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True, metavar="FAQ_COMMAND")
    p = faq_sub.add_parser("import", help="load an FAQ CSV file (id,question,answer), all or nothing, "
                                          "replacing the stored FAQ as a whole")
    p.add_argument("file", metavar="FILE",
                   help="CSV id,question,answer, UTF-8 with diacritics; `question` may list other phrasings "
                        "separated by |, the first is the one staff see")
    p.add_argument("--examples", metavar="EXAMPLES",
                   help="CSV id,question, UTF-8: citizens' questions (from the HOI log) labelled with the entry "
                        "that answers them; each counts as one more way to ask its entry; added to the stored "
                        "examples kept (one stored already is not added twice) (default: none added)")
    p.add_argument("--replace-examples", action="store_true",
                   help="drop every stored example (default: the stored examples whose entry id is still in FILE "
                        "are kept, such as those staff labelled with `smsgw questions answer --faq`)")
    p.add_argument("--db", required=True, metavar="PATH",
                   help=db_help + "; created if missing (its folder must exist); the schema is migrated first")
    p.set_defaults(func=cmd_faq_import)
