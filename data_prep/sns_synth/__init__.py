"""A deterministic, seeded generator of a bilingual (zh/en) SNS-like multi-task data set.

It covers the eight SNS-Bench task types, zh<->en translation and a general rehearsal set, built from
real text that ships offline (see ``sources.py``). Entry point: :func:`build.build_all`, or
``python -m data_prep.sns_synth --out DIR``.
"""
