from celery import shared_task

from config.celery import send_task

from . import change, export_jobs, pipeline


@shared_task(autoretry_for=(Exception,), retry_backoff=10, retry_backoff_max=300, max_retries=5)
def recompute_survey(survey_id: int) -> str:
    done = pipeline.run_pending(survey_id)
    send_task(change.PREPARE_CHANGES, survey_id)
    return done


@shared_task(autoretry_for=(Exception,), retry_backoff=10, retry_backoff_max=300, max_retries=5)
def publish_official(wave_id: int) -> int | None:
    run = pipeline.publish_official(wave_id)
    if run is not None:
        send_task(change.PREPARE_CHANGES, run.survey_id)
    return run.number if run else None


@shared_task
def prepare_changes(survey_id: int) -> int:
    return change.prepare(survey_id)


@shared_task
def sweep() -> dict[str, int]:
    return pipeline.sweep()


@shared_task(acks_late=True)
def run_export(job_id: int) -> str:
    return export_jobs.export_job(job_id)


@shared_task
def sweep_exports() -> dict[str, int]:
    return export_jobs.sweep()
