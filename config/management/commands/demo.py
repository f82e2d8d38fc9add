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
from config import rounds, simulation
from config.celery import tasks_held
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS, ensure_roles
from respondents import credentials, frame_changes, sampling
from respondents.frame_changes import import_links
from respondents.frame_import import import_frame
from respondents.models import Case, FrameUnit, SampleDesign, Wave
from respondents.synthetic import write_frame, write_next_year
from surveys.models import QueryAnswer, Survey
from surveys.xlsform import load_questionnaire

FORM = Path(settings.BASE_DIR) / "surveys" / "questionnaires" / "smart_manufacturing.xlsx"
SLUG = "smart_manufacturing"
NEXT_SLUG = "smart_manufacturing_2025"
USERS = {
    "manager": ("manager-demo-2024", FIELDWORK_MANAGERS),
    "admin": ("admin-demo-2024", ADMINISTRATORS),
}
# 2025 is drawn by permanent random numbers coordinated with 2024's draw: a fifth of each
# stratum's 2024 firms rotate out, the rest stay (methodology M2).
ROTATION = 0.2
FIELDWORK_DAYS = 70  # 2024's fieldwork, to the phone follow-up's end


class Command(BaseCommand):
    help = (
        "Load the demo: two annual rounds of the shipped questionnaire. 2024: a synthetic "
        "frame of 163,273 firms, a stratified sample of 5,000 by permanent random numbers, "
        "its whole fieldwork. 2025: started from 2024, next year's frame with its changes, a "
        "sample coordinated with 2024's, fieldwork under way. A manager and an admin account."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=163_273, help="frame size")
        parser.add_argument("--sample", type=int, default=5_000, help="sample size")
        parser.add_argument("--reset", action="store_true", help="rebuild the demo surveys")
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
        current = Survey.objects.filter(slug=NEXT_SLUG).first()
        if reset or current is None or not current.cases.exists():
            for slug in (NEXT_SLUG, SLUG):  # the later round first: it points at the earlier
                earlier = Survey.objects.filter(slug=slug).first()
                if earlier is not None:
                    self.stdout.write(f"Removing the earlier demo survey {slug}…")
                    _delete(earlier)
            # DEBUG's query log would record each of the build's ~400,000 queries, and on
            # SQLite it runs a second query for each to quote its parameters.
            with override_settings(DEBUG=False):
                current = self._build(rows, sample, relay_per_hour)
        self._print(current)

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
        today = timezone.now()
        # 2025's fieldwork began 55 days ago, at nine in the morning in Seoul; 2024's a year
        # (52 weeks) before, and it ran its whole course.
        fieldwork = timezone.localtime(today).replace(
            hour=9, minute=0, second=0, microsecond=0
        ) - dt.timedelta(days=55)
        last_year = fieldwork - dt.timedelta(weeks=52)
        mail = Path(settings.VAR_DIR) / "demo" / "mail"
        shutil.rmtree(mail, ignore_errors=True)
        mail.mkdir(parents=True)
        manager = User.objects.get(username="manager")
        # The set-up of each round happens before its fieldwork, on the simulated clock too.
        with time_machine.travel(last_year - dt.timedelta(days=14), tick=False) as clock:
            first = self._prepare(rows, sample, started, clock)
            ends = last_year + dt.timedelta(days=FIELDWORK_DAYS)
            self._fieldwork(first, last_year, ends, manager, mail, relay, clock, started)
            # The phone follow-up, the last wave, ends with the fieldwork.
            with tasks_held():
                for wave in Wave.objects.filter(survey=first, closed_at__isnull=True):
                    pipeline.close_wave(wave, user=manager)
            self._step("2024 closed: its last wave's official estimates", started)
            clock.move_to(fieldwork - dt.timedelta(days=30))
            survey = self._next_round(first, rows, sample, started, clock)
            self._fieldwork(survey, fieldwork, today, manager, mail, relay, clock, started)
        self._review_edits(survey, started)
        self._second_weighting(survey, started)
        return survey

    def _fieldwork(
        self,
        survey: Survey,
        start: dt.datetime,
        until: dt.datetime,
        manager: User,
        mail: Path,
        relay: int,
        clock: Any,
        started: float,
    ) -> None:
        clock.move_to(start - dt.timedelta(days=7))
        for _issued in credentials.issue_credentials(survey):
            pass
        self._step(f"{survey.year}: links and access codes issued", started)
        summary = simulation.simulate(
            survey,
            start=start,
            until=until,
            manager=manager,
            mail_dir=mail,
            seed=20241001 + (survey.year or 2024) - 2024,
            relay_per_hour=relay,
            clock=clock,
        )
        self._step(
            f"{survey.year}: fieldwork played through the platform: {len(summary.waves)} "
            f"waves, {summary.emails:,} emails sent ({mail}), {summary.responses:,} responses; "
            "each closed wave's official estimates and the latest provisional ones",
            started,
        )

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
        survey.year = 2024
        survey.save(update_fields=["target_responses", "year"])
        self._step(f"Questionnaire “{survey.title}” loaded", started)
        frame = Path(settings.VAR_DIR) / "demo" / "frame.csv"
        frame.parent.mkdir(parents=True, exist_ok=True)
        write_frame(frame, rows=rows)
        result = import_frame(survey, frame, filename=frame.name, prn_seed=2024)
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
            selection=SampleDesign.Selection.PRN,
        )
        self._step(
            f"Stratified sample of {design.sample_size:,} drawn by permanent random numbers "
            f"({design.strata.count()} strata, 20 % reserve)",
            started,
        )
        return survey

    def _next_round(
        self, first: Survey, rows: int, sample: int, started: float, clock: Any
    ) -> Survey:
        """2025: started from 2024 on its page's function, its questionnaire edited to show
        and check last year's headcount, next year's frame and mapping, a coordinated draw."""
        admin = User.objects.get(username="admin")
        survey = rounds.start_next_round(
            first,
            slug=NEXT_SLUG,
            title=first.title.replace("2024", "2025"),
            title_en=first.title_en.replace("2024", "2025"),
            year=2025,
            user=admin,
        )
        edited = simulation.next_round_workbook(
            FORM.read_bytes(),
            form_id=NEXT_SLUG,
            version="2025.1",
            title=survey.title,
            title_en=survey.title_en,
        )
        load_questionnaire(edited, source_name=f"{NEXT_SLUG}.xlsx", user=admin)
        self._step(
            "2025 round started from 2024; its questionnaire shows last year's headcount", started
        )
        folder = Path(settings.VAR_DIR) / "demo"
        frame, links = folder / "frame-2025.csv", folder / "id-links-2025.csv"
        found = write_next_year(frame, links, rows=rows)
        result = import_frame(survey, frame, filename=frame.name, prn_seed=2025)
        linked = import_links(survey, links, filename=links.name)
        report = frame_changes.report(survey)
        total = report.total if report else {}
        self._step(
            f"2025 frame of {result.rows:,} firms imported ({frame}): {total.get('births', 0):,} "
            f"births, {total.get('deaths', 0):,} deaths, {total.get('moved_in', 0):,} moved "
            f"between strata; {linked} changed IDs linked ({links}, {len(found.links) - 1} rows)",
            started,
        )
        clock.shift(dt.timedelta(days=4))
        design = sampling.draw_sample(
            survey,
            strata_variables=["industry_group", "size_class", "region_area"],
            allocation="proportional",
            sample_size=sample,
            min_per_stratum=2,
            seed=43,
            reserve_fraction=0.2,
            selection=SampleDesign.Selection.PRN,
            coordination=SampleDesign.Coordination.ROTATION,
            rotation=ROTATION,
        )
        overlap = sampling.overlap_table(design)
        self._step(
            f"2025 sample of {design.sample_size:,} coordinated with 2024's ({ROTATION:.0%} "
            f"rotation): {overlap.realised:,} firms of 2024's sample again in the same stratum "
            f"(expected {overlap.expected or 0:,.1f}), {overlap.realised_all:,} in any",
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
            f"  2025 round:         {base}/manage/{survey.slug}/ (2024: {base}/manage/{SLUG}/)",
            f"  Fieldwork dashboard: {base}/manage/{survey.slug}/fieldwork/",
            f"  Frame changes:      {base}/manage/{survey.slug}/frame/",
            f"  Coordinated sample: {base}/manage/{survey.slug}/design/",
            f"  Results:            {base}/manage/{survey.slug}/results/",
            f"  Firms' sign-in:     {base}/login/",
            "  A few firms that have not answered yet (personal links and access codes);",
            "  those that answered in 2024 see last year's headcount:",
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
