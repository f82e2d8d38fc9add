"""Hostile and random input to every form that takes it.

Whatever arrives, the answer is never a server error and never a corrupt row: stored answers
keep their types and options, a submitted response still passes every rule, the revision only
grows, and a refused import or form leaves the database as it was. Markup typed anywhere is
shown as text on every page that shows it.

Hypothesis runs derandomized with few examples, so the file is fast and always the same.
NUL characters are left out of the random text here: PostgreSQL cannot store them, and their
handling has tests of its own (test_a_nul_byte_…).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Model
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from analytics.forms import WeightingSpecForm
from analytics.models import Estimate, WeightingSpec
from analytics.spec import WeightingSpec as Spec
from respondents.models import (
    AccessFailure,
    Case,
    ContactAttempt,
    DispositionEvent,
    FrameUnit,
    MessageTemplate,
    SampleDesign,
    Wave,
)
from surveys.models import EditQuery, QuestionnaireVersion, Response, Survey, ValueEdit, get_form
from surveys.questionnaire import Form, Question
from surveys.views import SESSION_CASE
from surveys.xlsform import read_definition
from tests import factories
from tests.security.conftest import (
    ADMIN,
    ANONYMOUS,
    API_OWN,
    FIRM_A,
    IDENTIFIED,
    MANAGER,
    World,
    isolated,
)
from tests.surveys.answering import ADOPTER

pytestmark = pytest.mark.django_db

HOSTILE = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
# What must never reach an HTML page unescaped.
RAW_MARKUP = ("<script>alert(", "<img src=x onerror")
PAYLOADS = (
    SCRIPT,
    IMG,
    "' OR '1'='1' --",
    "1; DROP TABLE surveys_response; --",
    "0000-00-00",
    "2024-02-30",
    "-1",
    "-0",
    "1e309",
    "NaN",
    "Infinity",
    "9" * 40,
    "²",
    "１２３",
    '=HYPERLINK("http://evil.example")',
    "{{ 7*7 }}",
    "%(name)s %s",
    "\u202ereversed",
    "😀" * 5,
    " ",
    "",
)
# Stand-ins replaced in the test by the live value, so that many posts reach the save itself.
FIRM_A_ID = "<firm A's business ID>"
ABSENT = "<leave the field out>"
NO_NUL = st.characters(codec="utf-8", exclude_characters="\x00")  # no surrogates, no NUL
SHIPPED = Form(read_definition(factories.SHIPPED_FORM.read_bytes()))
PAGES = [page.name for page in SHIPPED.pages]


def scalars() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(PAYLOADS),
        st.text(NO_NUL, max_size=30),
        st.integers(-(10**25), 10**25).map(str),
        st.floats().map(str),
        st.integers(0, 6000).map(lambda n: "7" * n),
    )


def values() -> st.SearchStrategy[str | list[str]]:
    return st.one_of(scalars(), st.lists(scalars(), max_size=4))


def extras() -> st.SearchStrategy[dict[str, str | list[str]]]:
    return st.dictionaries(st.text(NO_NUL, min_size=1, max_size=12), values(), max_size=2)


def posted(
    fields: dict[str, st.SearchStrategy[Any]], *, always: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """The form's fields (those in `always` always, others maybe), each mostly valid and
    sometimes hostile, plus unknown ones. Mostly valid so that many posts reach the save."""
    mixed = {name: st.one_of(field, field, field, values()) for name, field in fields.items()}
    chosen = st.fixed_dictionaries(
        {name: mixed[name] for name in always},
        optional={name: field for name, field in mixed.items() if name not in always},
    )
    return st.tuples(extras(), chosen).map(lambda pair: {**pair[0], **pair[1]})


def valid(question: Question) -> st.SearchStrategy[Any]:
    names = question.choice_names
    if question.type == "select_one":
        return st.sampled_from(names)
    if question.type == "select_multiple":
        return st.lists(st.sampled_from(names), max_size=3, unique=True)
    if question.type == "integer":
        return st.integers(-5, 20_000).map(str)
    if question.type == "decimal":
        return st.floats(-1, 2e8, allow_nan=False).map(lambda x: f"{x:.2f}")
    if question.type == "date":
        return st.dates().map(str)
    return st.one_of(st.text(NO_NUL, max_size=40), st.sampled_from(PAYLOADS))


def page_fields(page: str) -> dict[str, st.SearchStrategy[Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for question in SHIPPED.page_by_name[page].inputs:
        fields[question.name] = valid(question)
        if question.type == "select_multiple":
            fields[f"{question.name}__present"] = st.just("1")
    fields["shown"] = st.sampled_from(
        [
            ABSENT,
            "{}",
            "not json",
            '{"employees": 1}',
            "[1]",
            '{"importance": ["a"]}',
            "null",
            '"x"',
        ]
    )
    fields["clock"] = st.sampled_from([ABSENT, "", "-1", "1e99", "99999999999999999999999"])
    fields["decide"] = st.sampled_from([ABSENT, "mine:employees", "theirs:x", ":", "mine:"])
    fields["seen__employees"] = st.sampled_from([ABSENT, '"5"', "[", '{"a": 1}'])
    fields["action"] = st.sampled_from(["next", "save", "back"])
    return fields


def page_posts() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    def of(page: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        inputs = tuple(q.name for q in SHIPPED.page_by_name[page].inputs)
        return st.tuples(st.just(page), posted(page_fields(page), always=inputs))

    return st.sampled_from(PAGES).flatmap(of)


# --- invariants ---------------------------------------------------------------------------------


def assert_served(response: Any) -> None:
    """Not a server error, and no markup reaches an HTML page unescaped."""
    assert response.status_code < 500
    if response["Content-Type"].startswith("text/html"):
        html = response.content.decode()
        for markup in RAW_MARKUP:
            assert markup not in html


def stored_value_is_valid(question: Question, value: Any) -> bool:
    if question.type == "select_one":
        return value in question.choice_names
    if question.type == "select_multiple":
        return isinstance(value, list) and bool(value) and set(value) <= set(question.choice_names)
    if question.type == "integer":
        return type(value) is int and abs(value) < 10**15
    if question.type == "decimal":
        return type(value) in (int, float) and abs(value) < 1e17
    if question.type == "date":
        return isinstance(value, str) and dt.date.fromisoformat(value).isoformat() == value
    if question.type == "text":
        return isinstance(value, str) and len(value) <= 2000
    return value is None or type(value) in (int, float, str)  # calculate


def assert_response_intact(case: Case, before: Response | None) -> None:
    found = Response.objects.filter(case=case).first()
    if found is None:
        return
    form = get_form(found.questionnaire_id)
    for name, value in found.answers.items():
        if name in form.questions:
            assert stored_value_is_valid(form.questions[name], value), (name, value)
    for name, draft in found.drafts.items():
        assert isinstance(draft, str | list), (name, draft)
        assert len(draft) <= form.questions[name].raw_limit if name in form.questions else True
    if found.is_submitted:
        assert form.validate_all(found.answers) == {}
    if before is not None:
        assert found.revision >= before.revision
        if before.is_submitted:
            assert (found.answers, found.revision) == (before.answers, before.revision)


def counts(*models: type[Model]) -> dict[str, int]:
    return {model.__name__: model._default_manager.count() for model in models}


def typed(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for page, data in answers.items():
        values, errors, _dropped = SHIPPED.clean_page(SHIPPED.page_by_name[page], data, values)
        assert not errors
    return values


def give_response(world: World, state: str) -> Response | None:
    """Firm A's response: none yet, half answered, or submitted."""
    if state == "fresh":
        return None
    submitted = state == "submitted"
    pages = ADOPTER if submitted else {"profile": ADOPTER["profile"]}
    return Response.objects.create(
        case=world.firm_a,
        questionnaire_id=world.survey.questionnaire_id,
        answers=typed(pages),
        revision=3,
        last_editor="tab-0",
        page="awareness",
        status="submitted" if submitted else "in_progress",
        submitted_at=timezone.now() if submitted else None,
        reference="SMF-TESTS-00001" if submitted else None,
    )


def respondent_base(world: World, channel: str) -> tuple[Client, str]:
    if channel == "web":
        return world.client(FIRM_A), "/q/"
    keyed = f"/manage/{world.survey.slug}/cases/{world.firm_a.pk}/key/phone/"
    return world.client(MANAGER), keyed


# --- the firm's pages -------------------------------------------------------------------------


@settings(HOSTILE, max_examples=40)
@given(
    post=page_posts(),
    state=st.sampled_from(["fresh", "answered", "submitted"]),
    target=st.sampled_from(["page", "autosave", "review"]),
    channel=st.sampled_from(["web", "keyed"]),
)
def test_hostile_answers_never_break_a_page_nor_corrupt_the_response(
    world: World, post: tuple[str, dict[str, Any]], state: str, target: str, channel: str
) -> None:
    page, data = post
    with isolated():
        # given
        before = give_response(world, state)
        client, base = respondent_base(world, channel)
        data = {k: v for k, v in data.items() if v != ABSENT}
        path = {
            "page": f"{base}p/{page}/",
            "autosave": f"{base}p/{page}/autosave/",
            "review": f"{base}review/",
        }[target]

        # when
        response = client.post(path, data)
        shown = client.get(f"{base}p/{page}/", follow=True)

        # then
        assert_served(response)
        assert_served(shown)
        assert_response_intact(world.firm_a, before)


@HOSTILE
@given(data=posted({"business_id": st.just(FIRM_A_ID), "access_code": scalars()}))
def test_hostile_sign_in_input_is_refused_without_error(world: World, data: dict[str, Any]) -> None:
    with isolated():
        # given
        client = world.client(ANONYMOUS)
        data = {k: world.firm_a.business_id if v == FIRM_A_ID else v for k, v in data.items()}

        # when
        response = client.post("/login/", data)

        # then
        assert_served(response)
        assert response.status_code == 200
        assert SESSION_CASE not in client.session
        for failure in AccessFailure.objects.all():
            assert len(failure.business_id) <= 40 and len(failure.client) <= 64


# --- staff forms ------------------------------------------------------------------------------
# Each post starts from a valid form (random valid values), then up to three fields are made
# hostile or left out: so some posts are saved and the others must change nothing.


def form_posts(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    overlay = st.dictionaries(
        st.sampled_from(sorted(fields)), st.one_of(values(), st.just(ABSENT)), max_size=3
    )
    return st.tuples(extras(), st.fixed_dictionaries(fields), overlay).map(
        lambda t: {k: v for k, v in {**t[0], **t[1], **t[2]}.items() if v != ABSENT}
    )


def added(before: dict[str, int], *models: type[Model]) -> int:
    return sum(counts(*models).values()) - sum(before.values())


@pytest.fixture
def undrawn(db: None) -> Survey:
    """A survey with a frame of 40 firms and no sample drawn yet."""
    survey = Survey.objects.create(slug="pilot-frame", title="Pilot")
    for number in range(40):
        factories.frame_unit(
            survey,
            size_class=("micro", "small", "medium")[number % 3],
            region=("Seoul", "Busan")[number % 2],
            employees=5 + number,
        )
    return survey


ZONES = '{"zone": {"source": "region", "map": {"Seoul": "north", "Busan": "south"}}}'
DESIGN_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "strata_variables": st.lists(
        st.sampled_from(["size_class", "region", "zone"]), min_size=1, max_size=2, unique=True
    ),
    "groupings": st.sampled_from([ZONES, ""]),
    "allocation": st.sampled_from(["proportional", "power"]),
    "sample_size": st.integers(1, 45).map(str),
    "min_per_stratum": st.integers(0, 4).map(str),
    "seed": st.integers(0, 10**9).map(str),
    "reserve_fraction": st.sampled_from(["0", "0.5", "1"]),
    "power": st.sampled_from(["", "0.5"]),
    "confirm": st.sampled_from(["on", ABSENT]),
    "draw": st.sampled_from(["1", ABSENT]),
}


@HOSTILE
@given(data=form_posts(DESIGN_FIELDS))
def test_hostile_sample_designs_are_refused_or_drawn_never_half_drawn(
    world: World, undrawn: Survey, data: dict[str, Any]
) -> None:
    with isolated():
        # given
        before = counts(Case, SampleDesign)

        # when
        response = world.client(MANAGER).post(f"/manage/{undrawn.slug}/design/", data)

        # then
        assert_served(response)
        drawn = SampleDesign.objects.filter(survey=undrawn, drawn_at__isnull=False).first()
        if response.status_code != 302:
            assert counts(Case, SampleDesign) == before
        else:
            assert drawn is not None
            assert Case.objects.filter(survey=undrawn).count() >= drawn.sample_size


def past_times(days: int = 300) -> st.SearchStrategy[str]:
    return st.integers(1, days * 24).map(
        lambda hours: (timezone.localtime() - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")
    )


ODD_TIMES = ["0000-00-00T00:00", "2024-13-45T99:99", "9999-12-31T23:59", "yesterday"]
WAVE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(NO_NUL, min_size=1, max_size=40).filter(str.strip),
    "kind": st.sampled_from(["invitation", "reminder", "phone", "other"]),
    "starts_at": st.one_of(past_times(), st.sampled_from(ODD_TIMES)),
    "ends_at": st.one_of(st.just(ABSENT), st.sampled_from(ODD_TIMES)),
}


@HOSTILE
@given(data=form_posts(WAVE_FIELDS))
def test_hostile_waves_are_refused_or_saved_whole(world: World, data: dict[str, Any]) -> None:
    with isolated():
        before = counts(Wave)

        response = world.client(MANAGER).post(f"/manage/{world.survey.slug}/waves/", data)

        assert_served(response)
        assert added(before, Wave) == (1 if response.status_code == 302 else 0)


CASE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "form": st.sampled_from(["disposition", "contact"]),
    "disposition-code": st.sampled_from(["2.111", "2.21", "3.19", "4.21", "1.1"]),
    "disposition-at": st.one_of(past_times(), st.sampled_from(ODD_TIMES)),
    "disposition-reason": st.one_of(st.text(NO_NUL, max_size=40), st.sampled_from(PAYLOADS)),
    "disposition-override": st.sampled_from(["on", ABSENT]),
    "contact-channel": st.sampled_from(["phone", "email", "letter", "fax", "visit"]),
    "contact-at": st.one_of(past_times(), st.sampled_from(ODD_TIMES)),
    "contact-outcome": st.sampled_from(["reached", "refused", "no_answer", "callback"]),
    "contact-note": st.one_of(st.text(NO_NUL, max_size=40), st.sampled_from(PAYLOADS)),
}


@HOSTILE
@given(data=form_posts(CASE_FIELDS))
def test_hostile_dispositions_and_contacts_are_refused_or_recorded_whole(
    world: World, data: dict[str, Any]
) -> None:
    with isolated():
        before = counts(DispositionEvent, ContactAttempt)
        path = f"/manage/{world.survey.slug}/cases/{world.firm_a.pk}/"

        response = world.client(MANAGER).post(path, data)
        page = world.client(MANAGER).get(path)

        assert_served(response)
        assert_served(page)
        assert added(before, DispositionEvent, ContactAttempt) == (response.status_code == 302)


TEMPLATE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "subject": st.one_of(st.text(NO_NUL, min_size=1, max_size=60), st.sampled_from(PAYLOADS)),
    "body": st.tuples(st.sampled_from(PAYLOADS), st.sampled_from(["{link}", "{access_code}"])).map(
        " ".join
    ),
}


@HOSTILE
@given(
    kind=st.sampled_from(["invitation", "reminder", "phone"]),
    language=st.sampled_from(["ko", "en", "xx"]),
    data=form_posts(TEMPLATE_FIELDS),
)
def test_hostile_message_templates_are_refused_or_saved(
    world: World, kind: str, language: str, data: dict[str, Any]
) -> None:
    with isolated():
        path = f"/manage/{world.survey.slug}/templates/{kind}/{language}/"

        response = world.client(MANAGER).post(path, data)
        shown = world.client(MANAGER).get(f"/manage/{world.survey.slug}/waves/")

        assert_served(response)
        assert_served(shown)
        stored = MessageTemplate.objects.filter(survey=world.survey)
        if kind == "phone" or language == "xx" or response.status_code != 302:
            assert not stored.exists()
        else:
            body = stored.get().body
            assert "{link}" in body or "{access_code}" in body


def spec_field(value: Any) -> st.SearchStrategy[Any]:
    if value is None:
        return st.just("")
    if isinstance(value, bool):
        return st.just("on" if value else ABSENT)
    if isinstance(value, list):
        return st.just(value)
    return st.just(str(value))


SPEC_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **{k: spec_field(v) for k, v in WeightingSpecForm.initial_from(Spec()).items()},
    "classes": st.lists(st.sampled_from(["size_class", "region"]), max_size=2, unique=True),
    "calibration": st.sampled_from(["none", "raking"]),
    "min_n": st.integers(1, 30).map(str),
    "rse_suppress": st.sampled_from(["0.3", "0.5", "0.8"]),
}


@HOSTILE
@given(data=form_posts(SPEC_FIELDS))
def test_hostile_weighting_specs_are_refused_or_saved_whole(
    world: World, data: dict[str, Any]
) -> None:
    with isolated():
        before = counts(WeightingSpec)

        response = world.client(ADMIN).post(f"/manage/{world.survey.slug}/weighting/", data)

        assert_served(response)
        assert added(before, WeightingSpec) == (1 if response.status_code == 302 else 0)


# The flag's id, put into the posted names and values by the test.
FLAG = "<the flag>"
REVIEW_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "action": st.sampled_from(["accept", "correct", "reject", "query", "resend", "", "delete"]),
    "flag": st.sampled_from([FLAG, FLAG, "0", "-1", "1e3", "99999999999999999999"]),
    f"accept-{FLAG}-reason": st.one_of(st.text(NO_NUL, max_size=30), st.sampled_from(PAYLOADS)),
    f"correct-{FLAG}-item": st.sampled_from(["invest_amount", "employees", "nope", ""]),
    f"correct-{FLAG}-value": valid(SHIPPED.questions["invest_amount"]),
    f"correct-{FLAG}-reason": st.one_of(st.text(NO_NUL, max_size=30), st.sampled_from(PAYLOADS)),
    f"reject-{FLAG}-item": st.sampled_from(["invest_amount", "sf_tech", ""]),
    f"reject-{FLAG}-reason": st.sampled_from(PAYLOADS),
    "query-flags": st.sampled_from([FLAG, "0", "x"]),
    "query-note": st.sampled_from(PAYLOADS),
    "resend-query": st.sampled_from(["1", "x", "-5"]),
}


def with_flag(data: dict[str, Any], flag: int) -> dict[str, Any]:
    def put(value: Any) -> Any:
        return (
            [put(v) for v in value]
            if isinstance(value, list)
            else str(value).replace(FLAG, str(flag))
        )

    return {put(name): put(value) for name, value in data.items()}


def assert_edits_intact(response: Response, answers: dict[str, Any]) -> None:
    """The firm's answers as they were; every edited value a value its question takes."""
    response.refresh_from_db()
    assert response.answers == answers
    form = get_form(response.questionnaire_id)
    for name, value in response.edited.items():
        assert value is None or stored_value_is_valid(form.questions[name], value), (name, value)
    for edit in response.value_edits.all():
        assert edit.new is None or stored_value_is_valid(form.questions[edit.item], edit.new)


@HOSTILE
@given(data=form_posts(REVIEW_FIELDS))
def test_hostile_review_actions_are_refused_or_taken_whole(
    world: World, data: dict[str, Any]
) -> None:
    with isolated():
        response = Response.objects.get(case=world.flagged)
        flag = response.edit_flags.get()
        before, answers = counts(ValueEdit, EditQuery), dict(response.answers)

        page = world.client(MANAGER).post(
            f"/manage/{world.survey.slug}/editing/cases/{world.flagged.pk}/",
            with_flag(data, flag.pk),
        )

        assert_served(page)
        flag.refresh_from_db()
        assert added(before, ValueEdit, EditQuery) == (0 if flag.status == "open" else 1)
        assert_edits_intact(response, answers)


QUERY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "sf_tech__decision": st.sampled_from(["confirm", "correct", "", "both"]),
    "sf_tech": valid(SHIPPED.questions["sf_tech"]),
    "sf_tech__comment": st.one_of(st.sampled_from(PAYLOADS), st.text(NO_NUL, max_size=40)),
}


@HOSTILE
@given(data=form_posts(QUERY_FIELDS))
def test_hostile_answers_to_a_query_are_refused_or_taken_whole(
    world: World, data: dict[str, Any]
) -> None:
    with isolated():
        response = Response.objects.get(case=world.flagged)
        before, answers = counts(ValueEdit), dict(response.answers)

        page = world.client(ANONYMOUS).post(f"/check/{world.query_token}/", data)

        assert_served(page)
        answered = EditQuery.objects.get(response=response).answered_at is not None
        assert answered == (page.status_code == 302)
        assert added(before, ValueEdit) <= 1
        assert_edits_intact(response, answers)
        confirmed = response.confirmations.get("adopter_tech")
        assert confirmed is None or set(confirmed["values"]["sf_tech"]) <= set(
            SHIPPED.questions["sf_tech"].choice_names
        )


def xlsx_variants() -> st.SearchStrategy[bytes]:
    shipped = factories.SHIPPED_FORM.read_bytes()
    return st.one_of(
        st.binary(max_size=2000),
        st.integers(0, len(shipped)).map(lambda n: shipped[:n]),
        st.tuples(st.integers(0, len(shipped) - 1), st.binary(min_size=1, max_size=50)).map(
            lambda p: shipped[: p[0]] + p[1] + shipped[p[0] + len(p[1]) :]
        ),
    )


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # 40 kB examples
@settings(HOSTILE, phases=[Phase.explicit, Phase.generate])
@given(content=xlsx_variants(), name=st.sampled_from(["form.xlsx", "form.xls", "form.csv"]))
def test_a_broken_questionnaire_file_is_refused_and_loads_nothing(
    world: World, content: bytes, name: str
) -> None:
    with isolated():
        before = counts(QuestionnaireVersion, Survey)
        upload = SimpleUploadedFile(name, content)

        response = world.client(ADMIN).post("/manage/questionnaires/upload/", {"file": upload})

        assert_served(response)
        if response.status_code != 302:
            assert counts(QuestionnaireVersion, Survey) == before


# Uploaded tables: a valid table with up to three cells made hostile and maybe a random row,
# or random bytes. Cells naming FIRM_A_ID / FIRM_B_ID get the firms' business IDs.
FIRM_B_ID = "<firm B's business ID>"
FRAME_COLUMNS = [
    "business_id", "name", "ksic", "size_class", "region", "employees", "sales_krw_mn",
    "email", "phone", "extra",
]  # fmt: skip
FRAME_KINDS = [("small", "경기도"), ("micro", "Busan"), ("medium", "Seoul")]
FRAME_ROWS = [
    [factories.business_id(5_000_000 + n), f"(주)시험정밀{n}", "25112", size, region, "25",
     "4,500.5", f"info{n}@example.co.kr", "031-555-1234", "x"]
    for n, (size, region) in enumerate(FRAME_KINDS)
]  # fmt: skip
DISPOSITION_ROWS = [
    ["business_id", "disposition", "date", "note"],
    [FIRM_A_ID, "2.111", "2024-05-01 10:00", "refused on the phone"],
    [FIRM_B_ID, "3.19", "2024-05-02", ""],
]
KEYED_ANSWERS = {k: v for page in ADOPTER.values() for k, v in page.items()}
RESPONSE_ROWS = [
    ["business_id", *KEYED_ANSWERS],
    [FIRM_A_ID, *(" ".join(v) if isinstance(v, list) else v for v in KEYED_ANSWERS.values())],
]
Table = list[list[str]]
Upload = tuple[str, Table | bytes, str]


def mutated(table: Table) -> st.SearchStrategy[Table]:
    cells = [(r, c) for r, row in enumerate(table) for c in range(len(row))]
    overlay = st.dictionaries(st.sampled_from(cells), scalars(), max_size=3)
    extra = st.lists(st.lists(scalars(), max_size=len(table[0]) + 1), max_size=1)

    def apply(changes: dict[tuple[int, int], str], more: Table) -> Table:
        rows = [list(row) for row in table]
        for (r, c), value in changes.items():
            rows[r][c] = value
        return rows + more

    return st.builds(apply, overlay, extra)


def uploads(table: Table) -> st.SearchStrategy[Upload]:
    encodings = st.sampled_from(["utf-8", "utf-8-sig", "cp949"])
    return st.one_of(
        st.tuples(st.just("upload.csv"), mutated(table), encodings),
        st.tuples(st.sampled_from(["upload.csv", "upload.xlsx"]), st.binary(max_size=500),
                  st.just("")),
    )  # fmt: skip


def file_of(world: World, upload: Upload) -> SimpleUploadedFile:
    name, content, encoding = upload
    if isinstance(content, list):
        names = {FIRM_A_ID: world.firm_a.business_id, FIRM_B_ID: world.firm_b.business_id}
        rows = [[names.get(cell, cell) for cell in row] for row in content]
        content = _csv(rows[0], rows[1:], encoding)
    return SimpleUploadedFile(name, content)


def _csv(header: list[str], rows: Table, encoding: str) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode(encoding, errors="replace")


@HOSTILE
@given(upload=uploads([FRAME_COLUMNS, *FRAME_ROWS]))
def test_a_hostile_frame_file_is_refused_whole(
    world: World, undrawn: Survey, upload: Upload
) -> None:
    with isolated():
        before = counts(FrameUnit, Case, Estimate)

        response = world.client(MANAGER).post(
            f"/manage/{undrawn.slug}/frame/upload/", {"file": file_of(world, upload)}
        )

        assert_served(response)
        if response.status_code != 302:
            assert counts(FrameUnit, Case, Estimate) == before
        else:
            assert FrameUnit.objects.filter(survey=undrawn).count() >= len(FRAME_ROWS)


def responses() -> dict[int, tuple[Any, str]]:
    rows = Response.objects.values_list("pk", "answers", "status")
    return {pk: (answers, status) for pk, answers, status in rows}


def firm_state(world: World) -> list[tuple[Any, ...]]:
    cases = Case.objects.filter(survey=world.survey).order_by("pk")
    return [*cases.values_list("pk", "disposition"), *sorted(responses().items())]


IMPORTS = st.one_of(
    st.tuples(st.just("dispositions"), st.just(""), uploads(DISPOSITION_ROWS)),
    st.tuples(st.just("responses"), st.sampled_from(["phone", "paper", "fax", "web", ""]),
              uploads(RESPONSE_ROWS)),
    st.tuples(st.just("other"), st.just(""), uploads(DISPOSITION_ROWS)),
)  # fmt: skip


@HOSTILE
@given(chosen=IMPORTS)
def test_a_hostile_fieldwork_import_is_refused_whole(
    world: World, chosen: tuple[str, str, Upload]
) -> None:
    kind, mode, upload = chosen
    with isolated():
        # given
        before = counts(Case, FrameUnit, Estimate, DispositionEvent, Response)
        state, answered = firm_state(world), responses()

        # when
        response = world.client(MANAGER).post(
            f"/manage/{world.survey.slug}/imports/",
            {"kind": kind, "mode": mode, "file": file_of(world, upload)},
        )

        # then
        assert_served(response)
        if response.status_code != 302:
            assert counts(Case, FrameUnit, Estimate, DispositionEvent, Response) == before
            assert firm_state(world) == state
        changed = [pk for pk, now in responses().items() if answered.get(pk) != now]
        for found in Response.objects.filter(pk__in=changed):
            assert found.is_submitted
            assert get_form(found.questionnaire_id).validate_all(found.answers) == {}


# --- query parameters -------------------------------------------------------------------------

QUERY = st.dictionaries(
    st.sampled_from(
        ["item", "option", "statistic", "domain", "domain_value", "limit", "offset", "run",
         "wave", "page", "q", "stratum", "size_class", "region", "status", "weighted"]
    ),
    scalars(),
    max_size=4,
)  # fmt: skip


@HOSTILE
@given(
    path=st.sampled_from(
        ["runs/latest/estimates/", "runs/1/estimates/", "runs/", "runs/latest/", "fieldwork/"]
    ),
    query=QUERY,
)
def test_hostile_api_query_parameters_get_a_client_error_at_worst(
    world: World, path: str, query: dict[str, str]
) -> None:
    response = world.client(API_OWN).get(f"/api/v1/surveys/{world.survey.slug}/{path}", query)

    assert response.status_code in (200, 400, 404)
    assert response["Content-Type"].startswith("application/json")


STAFF_LISTS = ["results/", "results/sf_adopted/", "sample/", "sample/export.csv",
               "fieldwork/", "fieldwork/chase/", "fieldwork/rates.csv"]  # fmt: skip


@HOSTILE
@given(path=st.sampled_from(STAFF_LISTS), query=QUERY)
def test_hostile_query_parameters_on_staff_pages_never_break_them(
    world: World, path: str, query: dict[str, str]
) -> None:
    response = world.client(ADMIN).get(f"/manage/{world.survey.slug}/{path}", query)

    assert_served(response)


# --- markup shows as text everywhere ----------------------------------------------------------

MARKED_ANSWERS: dict[str, dict[str, Any]] = {
    **ADOPTER,
    "sf_status": {**ADOPTER["sf_status"], "sf_tech": ["erp", "other"], "sf_tech_other": SCRIPT},
    "sf_data": {**ADOPTER["sf_data"], "main_area": "other", "main_area_other": IMG},
    "contact": {**ADOPTER["contact"], "contact_name": SCRIPT, "contact_department": IMG},
}


def answer_and_submit(client: Client, case: Case, answers: dict[str, dict[str, Any]]) -> None:
    client.get("/q/")
    for page, data in answers.items():
        revision = Response.objects.get(case=case).revision
        sent = client.post(f"/q/p/{page}/", {**data, "revision": revision, "editor": "t"})
        assert sent.status_code == 302, sent.content.decode()[-1500:]
    assert client.post("/q/review/").status_code == 302


def html_of(client: Client, path: str) -> str:
    response = client.get(path, follow=True)
    assert response.status_code == 200, path
    return response.content.decode()


ESCAPED = {SCRIPT: "&lt;script&gt;alert(", IMG: "&lt;img src=x onerror"}


def assert_shown_as_text(html: str, *payloads: str, where: str = "") -> None:
    """No markup unescaped, and each payload shown (escaped) at least once."""
    for markup in RAW_MARKUP:
        assert markup not in html, where
    for payload in payloads or (SCRIPT,):
        assert ESCAPED[payload] in html, (where, payload)


def test_markup_typed_into_answers_shows_as_text_to_the_firm_and_to_staff(world: World) -> None:
    # given
    firm = world.client(FIRM_A)
    firm.get("/q/")
    for page in ("profile", "awareness", "adoption", "sf_status"):
        revision = Response.objects.get(case=world.firm_a).revision
        data = {**MARKED_ANSWERS[page], "revision": revision, "editor": "t", "action": "save"}
        firm.post(f"/q/p/{page}/", data)
    typing = firm.get("/q/p/sf_status/").content.decode()
    revision = Response.objects.get(case=world.firm_a).revision
    firm.post(
        "/q/p/sf_data/autosave/", {"main_area_other": IMG, "revision": revision, "editor": "t"}
    )
    autosaved = firm.get("/q/p/sf_data/").content.decode()

    # when
    answer_and_submit(firm, world.firm_a, MARKED_ANSWERS)
    keyed = f"/manage/{world.survey.slug}/cases/{world.firm_a.pk}/key/phone/"
    receipt = html_of(firm, "/q/receipt/")
    staff_receipt = html_of(world.client(MANAGER), keyed)

    # then
    assert_shown_as_text(typing, SCRIPT, where="page being answered")
    assert_shown_as_text(autosaved, IMG, where="autosaved draft")
    assert_shown_as_text(receipt, SCRIPT, IMG, where="receipt")
    assert_shown_as_text(staff_receipt, SCRIPT, IMG, where="staff receipt")


def test_markup_on_the_review_page_shows_as_text(world: World) -> None:
    firm = world.client(FIRM_A)
    firm.get("/q/")
    for page, data in MARKED_ANSWERS.items():
        revision = Response.objects.get(case=world.firm_a).revision
        firm.post(f"/q/p/{page}/", {**data, "revision": revision, "editor": "t"})

    assert_shown_as_text(html_of(firm, "/q/review/"), SCRIPT, IMG)


def test_markup_typed_by_staff_shows_as_text_on_staff_pages(world: World) -> None:
    # given
    manager, admin = world.client(MANAGER), world.client(ADMIN)
    slug, case = world.survey.slug, world.firm_a
    FrameUnit.objects.filter(pk=case.frame_unit_id).update(name=SCRIPT)
    now = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    manager.post(f"/manage/{slug}/cases/{case.pk}/", {
        "form": "disposition", "disposition-code": "2.111", "disposition-at": now,
        "disposition-reason": IMG,
    })  # fmt: skip
    manager.post(f"/manage/{slug}/cases/{case.pk}/", {
        "form": "contact", "contact-channel": "phone", "contact-at": now,
        "contact-outcome": "reached", "contact-note": IMG,
    })  # fmt: skip
    Wave.objects.filter(pk=world.wave.pk).update(name=SCRIPT, official_run=world.run)
    admin.post("/manage/api-tokens/", {"name": IMG, "surveys": [world.survey.pk]})

    # when
    case_page = html_of(admin, f"/manage/{slug}/cases/{case.pk}/")
    sample = html_of(admin, f"/manage/{slug}/sample/?q={case.business_id}")
    waves = html_of(admin, f"/manage/{slug}/waves/")
    results = html_of(admin, f"/manage/{slug}/results/")
    tokens = html_of(admin, "/manage/api-tokens/")

    # then
    assert_shown_as_text(case_page, SCRIPT, IMG, where="case page")
    assert_shown_as_text(sample, SCRIPT, where="sample list")
    assert_shown_as_text(waves, SCRIPT, where="waves")
    assert_shown_as_text(results, SCRIPT, where="results version menu")
    assert_shown_as_text(tokens, IMG, where="API tokens")


def relabelled_questionnaire(label: str) -> bytes:
    """The shipped XLSForm, version "xss", with every label of sf_adopted replaced."""
    book = openpyxl.load_workbook(factories.SHIPPED_FORM)
    sheet = book["survey"]
    header = [cell.value for cell in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[1].value == "sf_adopted":
            for cell, column in zip(row, header, strict=False):
                if str(column).startswith("label"):
                    cell.value = label
    book["settings"]["B2"] = "xss"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_markup_in_a_questionnaire_label_shows_as_text_in_the_questionnaire_and_results(
    world: World,
) -> None:
    # given
    upload = SimpleUploadedFile("form.xlsx", relabelled_questionnaire(SCRIPT + IMG))
    loaded = world.client(ADMIN).post("/manage/questionnaires/upload/", {"file": upload})
    assert loaded.status_code == 302

    # when
    slug = world.survey.slug
    pages = [
        html_of(world.client(FIRM_A), "/q/p/adoption/"),
        html_of(world.client(ADMIN), f"/manage/{slug}/results/"),
        html_of(world.client(ADMIN), f"/manage/{slug}/results/sf_adopted/"),
    ]

    # then
    for html in pages:
        assert_shown_as_text(html, SCRIPT, IMG)
        assert "</script><img" not in html


def test_markup_and_formulas_in_answers_are_inert_in_a_csv_export(
    world: World, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given
    formula = '=HYPERLINK("http://evil.example","click")'
    answers = {
        **MARKED_ANSWERS,
        "sf_data": {**MARKED_ANSWERS["sf_data"], "main_area_other": formula},
    }
    answer_and_submit(world.client(FIRM_A), world.firm_a, answers)
    # free text is in the identified file only (released levels leave it out)
    admin = world.client(IDENTIFIED)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        started = admin.post(f"/manage/{world.survey.slug}/downloads/", {
            "what": "microdata", "microdata-format": "csv", "microdata-language": "en",
            "microdata-level": "identified",
        })  # fmt: skip
    assert started.status_code == 302
    exported: Any = admin.get(started["Location"] + "file/")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode("utf-8-sig"))))

    # then
    cells = [cell for row in rows for cell in row]
    assert SCRIPT in cells  # kept as the text the firm typed
    assert "'" + formula in cells and formula not in cells


# --- NUL characters -----------------------------------------------------------------------------


def nul_contact(world: World) -> dict[str, Any]:
    revision = Response.objects.get(case=world.firm_a).revision
    return {**ADOPTER["contact"], "contact_name": "김\x00민수", "revision": revision, "editor": "t"}


def test_a_nul_byte_in_an_autosave_is_refused_not_a_server_error(world: World) -> None:
    firm = world.client(FIRM_A)
    firm.get("/q/")
    firm.raise_request_exception = False

    response = firm.post("/q/p/contact/autosave/", nul_contact(world))

    assert response.status_code < 500


def test_a_nul_byte_in_a_text_answer_is_refused_not_a_server_error(world: World) -> None:
    firm = world.client(FIRM_A)
    firm.get("/q/")
    firm.raise_request_exception = False

    response = firm.post("/q/p/contact/", nul_contact(world))

    assert response.status_code < 500
    assert "\x00" not in json.dumps(Response.objects.get(case=world.firm_a).answers)


def nul_file(world: World, kind: str) -> SimpleUploadedFile:
    firm = world.firm_a.business_id
    if kind == "frame":
        row = [firm, "a\x00b", "29199", "small", "Seoul", "12", "100", "x@example.com", "02-1234"]
        return SimpleUploadedFile("frame.csv", _csv(FRAME_COLUMNS[:-1], [row], "utf-8"))
    if kind == "responses":
        return SimpleUploadedFile(
            "keyed.csv", _csv(["business_id", "contact_name"], [[firm, "x\x00y"]], "utf-8")
        )
    row = [firm, "2.111", "2024-05-01", "called\x00"]
    return SimpleUploadedFile("calls.csv", _csv(DISPOSITION_ROWS[0], [row], "utf-8"))


@pytest.mark.parametrize("kind", ["frame", "responses"])
def test_a_nul_byte_in_an_uploaded_file_is_refused_whole(
    world: World, undrawn: Survey, kind: str
) -> None:
    # given
    before = counts(FrameUnit, Case, Response, DispositionEvent)
    path = f"/manage/{undrawn.slug}/frame/upload/"
    data: dict[str, Any] = {"file": nul_file(world, kind)}
    if kind == "responses":
        path, data = (
            f"/manage/{world.survey.slug}/imports/",
            {**data, "kind": kind, "mode": "paper"},
        )

    # when
    response = world.client(MANAGER).post(path, data)

    # then
    assert response.status_code == 200
    assert counts(FrameUnit, Case, Response, DispositionEvent) == before


def test_a_nul_byte_in_an_imported_disposition_note_is_refused_not_a_server_error(
    world: World,
) -> None:
    # given
    before = counts(DispositionEvent)
    client = world.client(MANAGER)
    client.raise_request_exception = False

    # when
    response = client.post(
        f"/manage/{world.survey.slug}/imports/",
        {"kind": "dispositions", "file": nul_file(world, "dispositions")},
    )

    # then
    assert response.status_code == 200
    assert counts(DispositionEvent) == before


def test_a_nul_byte_in_a_results_item_is_not_found(world: World) -> None:
    client = world.client(ADMIN)
    client.raise_request_exception = False

    response = client.get(f"/manage/{world.survey.slug}/results/sf%00adopted/")

    assert response.status_code == 404


@pytest.mark.parametrize("page", ["results/", "results/sf_adopted/"])
def test_a_version_number_that_is_not_a_number_is_not_found(world: World, page: str) -> None:
    client = world.client(ADMIN)
    client.raise_request_exception = False

    response = client.get(f"/manage/{world.survey.slug}/{page}", {"run": "²"})

    assert response.status_code == 404
