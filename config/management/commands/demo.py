"""Everything a newcomer needs to see the platform at work, with realistic synthetic data."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import time_machine
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from analytics import pipeline, review
from analytics.engine.weighting import WeightingError
from analytics.models import EditFlag, EstimateRun
from config import simulation
from config.celery import tasks_held
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS, ensure_roles
from respondents import credentials, sampling
from respondents.frame_import import import_frame
from respondents.models import Case, FrameUnit, Wave
from respondents.synthetic import write_frame
from surveys.models import QueryAnswer, Survey
from surveys.xlsform import load_questionnaire

FORM = Path(settings.BASE_DIR) / "surveys" / "questionnaires" / "smart_manufacturing.xlsx"
SLUG = "smart_manufacturing"
USERS = {
    "manager": ("manager-demo-2024", FIELDWORK_MANAGERS),
    "admin": ("admin-demo-2024", ADMINISTRATORS),
}


class Command(BaseCommand):
    help = (
        "Load the demo: the shipped questionnaire, a synthetic frame of 163,273 firms, a "
        "stratified sample of 5,000, simulated fieldwork waves with their estimate versions, "
        "and a manager and an admin account."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=163_273, help="frame size")
        parser.add_argument("--sample", type=int, default=5_000, help="sample size")
        parser.add_argument("--reset", action="store_true", help="rebuild the demo survey")
        parser.add_argument(
            "--relay-per-hour",
            type=int,
            default=simulation.RELAY_PER_HOUR,
            help="emails an hour the simulated mail relay accepts",
        )

    def handle(
        self,
        *args: Any,
        rows: int,
        sample: int,
        reset: bool,
        relay_per_hour: int,
        **options: Any,
    ) -> None:
        ensure_roles()
        self._users()
        survey = Survey.objects.filter(slug=SLUG).first()
        if survey is not None and reset:
            self.stdout.write("Removing the earlier demo survey…")
            _delete(survey)
            survey = None
        if survey is None or not survey.cases.exists():
            # DEBUG's query log would record each of the build's ~200,000 queries, and on
            # SQLite it runs a second query for each to quote its parameters.
            with override_settings(DEBUG=False):
                survey = self._build(rows, sample, relay_per_hour)
        self._print(survey)

    def _users(self) -> None:
        for username, (password, role) in USERS.items():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = username == "admin"
                user.save()
            user.groups.add(Group.objects.get(name=role))
        admin = User.objects.get(username="admin")
        admin.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="analytics", codename="download_identified"
            )
        )

    def _build(self, rows: int, sample: int, relay: int) -> Survey:
        started = time.perf_counter()
        # The set-up happens two weeks before fieldwork, on the simulated clock as well.
        today = timezone.now()
        # Fieldwork began 55 days ago, at nine in the morning in Seoul.
        fieldwork = timezone.localtime(today).replace(
            hour=9, minute=0, second=0, microsecond=0
        ) - dt.timedelta(days=55)
        with time_machine.travel(fieldwork - dt.timedelta(days=14), tick=False) as clock:
            survey = self._prepare(rows, sample, started, clock)
            clock.move_to(fieldwork - dt.timedelta(days=7))
            for _issued in credentials.issue_credentials(survey):
                pass
            self._step("Links and access codes issued", started)
            mail = Path(settings.VAR_DIR) / "demo" / "mail"
            shutil.rmtree(mail, ignore_errors=True)
            mail.mkdir(parents=True)
            summary = simulation.simulate(
                survey,
                start=fieldwork,
                until=today,
                manager=User.objects.get(username="manager"),
                mail_dir=mail,
                relay_per_hour=relay,
                clock=clock,
            )
        self._step(
            f"Fieldwork played through the platform: {len(summary.waves)} waves, "
            f"{summary.emails:,} emails sent ({mail}), {summary.responses:,} responses; "
            "each closed wave's official estimates and the latest provisional ones",
            started,
        )
        self._review_edits(survey, started)
        self._second_weighting(survey, started)
        return survey

    def _review_edits(self, survey: Survey, started: float) -> None:
        """The editing review after fieldwork, highest scores first: unit slips corrected
        (or, where the right value is unknown, rejected for imputation), one firm asked and
        answering, plausible values accepted; the rest wait in the queue."""
        manager = User.objects.get(username="manager")
        review.sync_answered_queries(survey.pk)
        queue = (
            EditFlag.objects.of_survey(survey.pk)
            .to_review()
            .select_related("response__case__frame_unit")
            .order_by("-score", "pk")
        )
        done: dict[str, int] = {}
        seen: set[int] = set()
        with tasks_held():
            for flag in list(queue[:40]):
                if flag.response_id in seen or len(seen) >= 14:
                    continue
                seen.add(flag.response_id)
                action = _decide_demo_flag(survey, flag, len(seen), manager)
                done[action] = done.get(action, 0) + 1
        left = EditFlag.objects.of_survey(survey.pk).to_review().count()
        summary = ", ".join(f"{n} {action}" for action, n in sorted(done.items()))
        self._step(f"Edit review: {summary}; {left} flags left in the queue", started)

    def _second_weighting(self, survey: Survey, started: float) -> None:
        """The administrator's second weighting: raked to the eligible population by size and
        region, the variance from 500 Rao-Wu bootstrap replicates that repeat the whole
        weighting."""
        spec = replace(
            pipeline.current_spec(survey)[0],
            calibration="raking",
            margins=("size_class", "region_area"),
            variance="bootstrap",
            imputation=DEMO_IMPUTATION,
        )
        # The worker's part is done here, once: a task of its own would compute the same
        # version beside this one.
        with tasks_held():
            version = pipeline.save_spec(survey, spec, user=User.objects.get(username="admin"))
        try:
            pipeline.run_pending(survey.pk)
        except WeightingError as exc:  # the run is recorded as failed, with this reason
            self._step(f"Weighting version {version} failed: {exc}", started)
        else:
            self._step(
                f"Weighting version {version}: raked on size and region area to the eligible "
                "population, bootstrap variance (500 replicates in the microdata), rejected "
                "and missing values imputed",
                started,
            )

    def _prepare(self, rows: int, sample: int, started: float, clock: Any) -> Survey:
        survey = Survey.objects.filter(slug=SLUG).first()
        if survey is None:
            survey = load_questionnaire(FORM.read_bytes(), source_name=FORM.name).survey
        survey.target_responses = int(sample * 0.6)
        survey.save(update_fields=["target_responses"])
        self._step(f"Questionnaire “{survey.title}” loaded", started)
        frame = Path(settings.VAR_DIR) / "demo" / "frame.csv"
        frame.parent.mkdir(parents=True, exist_ok=True)
        write_frame(frame, rows=rows)
        result = import_frame(survey, frame, filename=frame.name)
        self._step(f"Synthetic frame of {result.rows:,} firms imported ({frame})", started)
        clock.shift(dt.timedelta(days=4))
        design = sampling.draw_sample(
            survey,
            strata_variables=["industry_group", "size_class", "region_area"],
            allocation="proportional",
            sample_size=sample,
            min_per_stratum=2,
            seed=42,
            reserve_fraction=0.2,
        )
        self._step(
            f"Stratified sample of {design.sample_size:,} drawn "
            f"({design.strata.count()} strata, seed 42, 20 % reserve)",
            started,
        )
        return survey

    def _step(self, text: str, started: float) -> None:
        self.stdout.write(f"[{time.perf_counter() - started:6.1f} s] {text}")

    def _print(self, survey: Survey) -> None:
        base = settings.SITE_URL
        lines = [
            "",
            "The demo is ready.",
            f"  Staff sign-in:      {base}/accounts/login/",
            "    fieldwork manager: manager / manager-demo-2024",
            "    administrator:     admin / admin-demo-2024 (also the Django admin at /admin/)",
            f"  Fieldwork dashboard: {base}/manage/{survey.slug}/fieldwork/",
            f"  Results:            {base}/manage/{survey.slug}/results/",
            f"  Firms' sign-in:     {base}/login/",
            "  A few firms that have not answered yet (personal links and access codes):",
        ]
        for case in list(simulation.open_cases(survey))[:5]:
            _token, code = case.derive_credentials()
            lines.append(f"    {case.business_id}  code {code}  {case.respondent_link()}")
        self.stdout.write("\n".join(lines))


# The administrator's imputation, item by item in form order (methodology L4-L6).
DEMO_IMPUTATION = (
    "employees ratio frame.employees",
    "sales_krw_mn ratio frame.employees",
    "implementing derived if(${sf_adopted} = 'yes', 'yes', '')",
    "sf_level random",
    "sf_tech nearest frame.employees frame.sales_krw_mn",
    "invest_amount nearest frame.employees frame.sales_krw_mn",
)


def _decide_demo_flag(survey: Survey, flag: EditFlag, k: int, by: Any) -> str:
    """What a reviewer decides on a flag, the way the demo's reviewer works."""
    value = flag.values.get(flag.item)
    register = flag.values.get(f"frame.{flag.item}")
    slipped = isinstance(value, int | float) and register and value >= 5 * float(register)
    if flag.severity == "soft" and not slipped:
        review.accept(survey.pk, flag.pk, by=by, reason="확인 결과 응답이 맞음 (checked)")
        return "accepted"
    if not slipped:
        review.reject(survey.pk, flag.pk, item=flag.item, reason="모순된 응답", by=by)
        return "rejected"
    factor = 1000 if flag.item == "sales_krw_mn" else 10
    fixed = round(value / factor, 1) if factor == 1000 else int(value // factor)
    if k % 5 == 0:
        review.reject(survey.pk, flag.pk, item=flag.item, reason="단위 불명 (unit unclear)", by=by)
        return "rejected"
    if k % 5 == 1:
        query = review.query_firm(
            survey.pk, [flag.pk], note="입력 단위를 확인해 주십시오. Please check the unit.", by=by
        )
        answer = QueryAnswer(corrected=True, value=fixed, comment="단위 오류")
        query.answer({flag.item: answer})
        return "asked (the firm corrected)"
    review.correct(
        survey.pk,
        flag.pk,
        item=flag.item,
        value=fixed,
        reason="단위 착오 (unit slip, confirmed by phone)",
        by=by,
    )
    return "corrected"


def _delete(survey: Survey) -> None:
    with transaction.atomic():
        Wave.objects.filter(survey=survey).update(official_run=None)
        EstimateRun.objects.filter(survey=survey).delete()
        Case.objects.filter(survey=survey).delete()
        FrameUnit.objects.filter(survey=survey).delete()
        survey.delete()
