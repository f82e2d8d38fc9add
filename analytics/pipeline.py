"""Recompute a survey's estimates: snapshot, weight, estimate, publish (filled in by the
estimation engine work)."""


def run_pending(survey_id: int) -> None:
    return None
