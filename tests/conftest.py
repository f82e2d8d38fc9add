from __future__ import annotations

import pytest
from django.test import Client

from surveys.models import Survey
from tests import factories


@pytest.fixture
def survey(db: None) -> Survey:
    return factories.shipped_questionnaire().survey


@pytest.fixture
def respondent(survey: Survey, client: Client) -> factories.Respondent:
    """A sampled firm signed in through its personal link."""
    case, token, code = factories.case(survey)
    client.cookies["django_language"] = "en"
    response = client.get(f"/r/{token}/")
    assert response.status_code == 302
    return factories.Respondent(case=case, token=token, code=code, client=client)


@pytest.fixture(autouse=True)
def _fresh_form_cache() -> None:
    # Questionnaire versions are cached per process by primary key; a test database that
    # reuses keys (SQLite) must not see another test's form.
    from surveys.questionnaire import _FORMS

    _FORMS.clear()
