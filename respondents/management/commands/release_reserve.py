from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from respondents import sampling
from respondents.models import Stratum


class Command(BaseCommand):
    help = "Release the next reserve units of a stratum into the sample, in their drawn order."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="survey ID (slug)")
        parser.add_argument("stratum", help="stratum key, e.g. machinery/small/capital")
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--user", default="", help="username recorded as releasing them")

    def handle(self, *args: Any, **options: Any) -> None:
        stratum = Stratum.objects.filter(
            design__survey__slug=options["survey"],
            design__drawn_at__isnull=False,
            key=options["stratum"],
        ).first()
        if stratum is None:
            raise CommandError(
                _("Survey “%(survey)s” has no drawn stratum “%(key)s”.")
                % {"survey": options["survey"], "key": options["stratum"]}
            )
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(_("No user “%(name)s”.") % {"name": options["user"]})
        try:
            cases = sampling.release_reserve(stratum, count=options["count"], user=user)
        except sampling.SamplingError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            _("Released %(count)s reserve units of %(key)s; n_h is now %(n)s.")
            % {"count": len(cases), "key": stratum.key, "n": stratum.sample_size}
        )
