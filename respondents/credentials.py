"""Respondents' credentials: personal links and access codes issued in batches (hashed in a
small thread pool), and the letters CSV for a mail merge."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import QuerySet

from config.spreadsheets import csv_writer, safe_cell
from surveys.models import Survey

from .models import CREDENTIAL_FIELDS, Case

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser


CREDENTIAL_BATCH = 500
# PBKDF2 in hashlib releases the GIL: two threads use both cores of the 2-core machines.
HASHING_THREADS = 2


def issue_credentials(
    survey: Survey, *, cases: Iterable[Case] | None = None, reissue: bool = False
) -> Iterator[tuple[Case, str, str]]:
    """Issue credentials to in-sample cases that have none (or to all given ones if reissue).

    Yields (case, link token, access code) batch by batch; each batch is committed before
    it is yielded. Hashing runs in a small thread pool, the database writes here.
    """
    targets = Case.objects.filter(survey=survey).in_sample()
    if cases is not None:
        targets = targets.filter(pk__in=[case.pk for case in cases])
    if not reissue:
        targets = targets.filter(token_hash__isnull=True)
    ids = list(targets.order_by("pk").values_list("pk", flat=True))
    with ThreadPoolExecutor(max_workers=HASHING_THREADS) as pool:
        for start in range(0, len(ids), CREDENTIAL_BATCH):
            yield from _issue_batch(ids[start : start + CREDENTIAL_BATCH], reissue, pool)


def _issue_batch(
    ids: Sequence[int], reissue: bool, pool: ThreadPoolExecutor
) -> list[tuple[Case, str, str]]:
    with transaction.atomic():
        batch = Case.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        if not reissue:  # another manager may have issued them meanwhile
            batch = batch.filter(token_hash__isnull=True)
        locked = list(batch)
        issued = list(pool.map(Case.set_new_credentials, locked))
        _save_credentials(locked)
    return [(case, token, code) for case, (token, code) in zip(locked, issued, strict=True)]


def _save_credentials(cases: Sequence[Case]) -> None:
    """One prepared UPDATE per case. bulk_update's single statement compares every row with
    each case's WHEN, once per field: quadratic, and on SQLite slower than the hashing."""
    fields = [f for f in Case._meta.concrete_fields if f.name in CREDENTIAL_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.attname)} = %s" for f in fields)  # columns named as fields
    # Only the model's own names go into the statement; the values are parameters.
    sql = f"UPDATE {quote(Case._meta.db_table)} SET {assignments} WHERE id = %s"  # noqa: S608
    rows = [
        [f.get_db_prep_save(getattr(case, f.attname), connection) for f in fields] + [case.pk]
        for case in cases
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


LETTER_COLUMNS = ["business_id", "name", "link", "access_code"]


def letter_cases(survey: Survey) -> QuerySet[Case]:
    """The firms that get a letter, in the letters' order: in the sample, with credentials."""
    return (
        Case.objects.filter(survey=survey, token_hash__isnull=False)
        .in_sample()
        .select_related("frame_unit")
        .only("pk", "credential_version", "business_id", "frame_unit__name")
        .order_by("business_id")
    )


def write_letters(survey: Survey, out: IO[str]) -> int:
    """The mail-merge CSV (UTF-8 with BOM for Excel) of every in-sample case with credentials.

    The link and code are derived again from CREDENTIAL_KEY; nothing plain is stored.
    """
    cases = letter_cases(survey)
    out.write("\ufeff")
    writer = csv_writer(out)
    writer.writerow(LETTER_COLUMNS)
    written = 0
    for case in cases.iterator(chunk_size=2000):
        _token, code = case.derive_credentials()
        name = safe_cell(case.frame_unit.name)
        writer.writerow([case.business_id, name, case.respondent_link(), code])
        written += 1
    return written
