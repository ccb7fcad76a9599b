"""The course's command line: `python -m mlcourse {train,evaluate,exercises,grade} ...`."""

import argparse
import sys


def main(argv=None) -> int:
    from mlcourse import cli
    from mlcourse.grading import cli as grading_cli

    parser = argparse.ArgumentParser(prog="python -m mlcourse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)  # train, evaluate
    grading_cli.add_commands(commands)  # exercises, grade
    args = parser.parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
