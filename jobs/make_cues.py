"""Anomalous cues for every frame of a cache (embedded, or under `ray job submit -- python jobs/make_cues.py ...`);
resumes where it stopped. Every config field is a flag."""

import argparse

from fas.config import add_config_flags, config_from_args
from fas.cues import CueConfig, format_cue_summary, make_cues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_flags(parser, CueConfig)
    cfg = config_from_args(CueConfig, parser.parse_args())
    print(format_cue_summary(make_cues(cfg)))


if __name__ == "__main__":
    main()
