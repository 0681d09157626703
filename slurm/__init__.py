"""Slurm: the sbatch template, `redone slurm submit`, and a local two-node cluster for tests."""
