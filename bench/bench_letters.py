"""Invitation letters: 5,000 print-ready PDF pages (target under a minute), time and memory.

    make bench-letters BENCH_DATABASE_URL=postgres://…/<db>

The benchmark survey ("bench_letters": the synthetic 163,273-firm frame, a sample of 5,000
and their credentials) is built once and kept; --fresh rebuilds it. The letters are written
in a child process, so that its peak memory is the letters' alone (plus Django's baseline).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

SLUG = "bench_letters"
SAMPLE = 5_000


def prepare(fresh: bool) -> None:
    common.setup_django()
    from respondents import credentials
    from respondents.models import Case

    ready = Case.objects.filter(survey__slug=SLUG, token_hash__isnull=False).in_sample().count()
    if fresh or ready != SAMPLE:
        survey = common.drawn_survey(SLUG, SAMPLE, seed=7)
        for _issued in credentials.issue_credentials(survey):
            pass


def write() -> None:
    # Django alone (the parent migrated): the peak below is then the letters' own.
    import os

    import django

    os.environ.update(common.production_env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.urls import reverse

    from respondents import letters
    from surveys.models import Survey

    survey = Survey.objects.get(slug=SLUG)
    letters.register_fonts()
    reverse("surveys:login")  # the URLconf imports every view, as in a web process
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        pages = letters.write_letters_pdf(survey, out)
        elapsed = time.perf_counter() - started
        size = out.tell()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"letters PDF: {pages:,} pages in {elapsed:.1f} s ({pages / elapsed:.0f} pages/s, "
        f"target 5,000 in < 60 s); {size / 2**20:.1f} MiB; peak RSS {peak:.0f} MB "
        f"({peak - baseline:.0f} MB above the {baseline:.0f} MB of the loaded project)"
    )


def main() -> None:
    if "--write" in sys.argv:
        write()
        return
    prepare("--fresh" in sys.argv)
    subprocess.run([sys.executable, __file__, "--write"], check=True)


if __name__ == "__main__":
    main()
