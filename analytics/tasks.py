from celery import shared_task


@shared_task(ignore_result=True)
def recompute_survey(survey_id: int) -> None:
    from .pipeline import run_pending

    run_pending(survey_id)
