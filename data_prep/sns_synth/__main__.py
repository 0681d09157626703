"""``python -m data_prep.sns_synth --out DIR``: build the SNS demo set (see ``build.py``)."""

from data_prep.sns_synth.build import main

main()
