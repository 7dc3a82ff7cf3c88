"""Train any registered method: `python jobs/train.py METHOD --config FILE [--FIELD VALUE ...]` (embedded, or under
`ray job submit -- python jobs/train.py ...`); `fas methods` lists them. Every config field is a flag."""

import sys

from fas.jobs import train_main

if __name__ == "__main__":
    train_main(sys.argv[1:])
