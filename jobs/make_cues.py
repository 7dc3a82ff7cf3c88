"""Anomalous cues for every frame of a cache (embedded, or under `ray job submit -- python jobs/make_cues.py ...`);
resumes where it stopped. Every config field is a flag; ``--mask parsing --parsing-weights 79999_iter.pth`` (or
``--mask landmarks``, no weights) zeroes the cue outside the face: AG-FAS's DFG†."""

from fas.cues import CueConfig, format_cue_summary, make_cues
from fas.jobs import run_job

if __name__ == "__main__":
    run_job(CueConfig, make_cues, lambda cfg, summary: format_cue_summary(summary), __doc__)
