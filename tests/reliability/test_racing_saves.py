"""Two people of one firm saving at the same instant, as two PostgreSQL transactions: the
row lock orders them, each merges over what the other stored, and neither answer is lost."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from surveys import flow
from surveys.models import AnswerChange, Editor, Response, Survey, get_form
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 15


def test_two_transactions_racing_saves_on_one_response_lose_nothing(survey: Survey) -> None:
    assert connection.vendor == "postgresql"
    case, _token, _code = factories.case(survey)
    response = Response.objects.start(case)
    form = get_form(response.questionnaire_id)
    page = form.page_by_name["profile"]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    first = {"employees": "10", "sales_krw_mn": "1000"}
    flow.save_page(response, page, first, shown=None, editor=Editor("set-up"))

    def person(field: str, browser: str, base: int) -> None:
        try:
            for i in range(1, ROUNDS + 1):
                mine = Response.objects.select_related("case").get(pk=response.pk)
                shown = {q.name: mine.stored_raw(q) for q in page.inputs}
                start.wait(timeout=30)
                # the whole page as the browser shows it, with one field changed
                flow.save_page(
                    mine,
                    page,
                    {**shown, field: str(base + i)},
                    shown=shown,
                    editor=Editor(browser),
                )
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)
            start.abort()
        finally:
            connection.close()

    people = [
        threading.Thread(target=person, args=("employees", "browser-a", 10)),
        threading.Thread(target=person, args=("sales_krw_mn", "browser-b", 1000)),
    ]
    for thread in people:
        thread.start()
    for thread in people:
        thread.join()

    assert failures == []
    stored = Response.objects.get(pk=response.pk)
    assert stored.answers == {"employees": 10 + ROUNDS, "sales_krw_mn": 1000 + ROUNDS}
    assert stored.revision == 1 + 2 * ROUNDS
    for item in ("employees", "sales_krw_mn"):
        assert AnswerChange.objects.filter(response=stored, item=item).count() == 1 + ROUNDS
