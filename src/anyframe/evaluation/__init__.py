"""Evaluation: run suites through models and score them with the shapes-world oracle; reports and plots."""
