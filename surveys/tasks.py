from celery import shared_task

from . import xlsform


@shared_task(acks_late=True)
def load_upload(upload_id: int) -> str:
    return xlsform.load_upload(upload_id)
