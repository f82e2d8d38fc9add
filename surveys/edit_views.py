"""The staff page of a questionnaire version's edit rules: the list, and a file replacing it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from .edit_sheets import replace_edit_rules
from .forms import EditRulesUploadForm
from .models import QuestionnaireVersion, Survey
from .workbooks import FormError


@login_required
@permission_required("surveys.load_questionnaire", raise_exception=True)
def edit_rules(request: HttpRequest, survey: str, version: str = "") -> HttpResponse:
    found = get_object_or_404(Survey.objects.select_related("current_questionnaire"), slug=survey)
    chosen = _version(found, version)
    upload = EditRulesUploadForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and upload.is_valid():
        file = upload.cleaned_data["file"]
        try:
            count = replace_edit_rules(chosen, file.read(), file.name or "")
        except FormError as exc:
            problems = exc.problems
        else:
            messages.success(
                request,
                _("Loaded %(count)d edit rules for version %(version)s.")
                % {"count": count, "version": chosen.version},
            )
            return redirect("surveys:edit_rules_version", survey=found.slug, version=chosen.version)
    context = {
        "survey": found,
        "version": chosen,
        "versions": found.questionnaires.order_by("-loaded_at"),
        "rules": chosen.edit_rules.all(),
        "statistics": chosen.edit_statistics.all(),
        "upload": upload,
        "problems": problems,
    }
    return render(request, "surveys/edit_rules.html", context)


def _version(survey: Survey, version: str) -> QuestionnaireVersion:
    current = survey.current_questionnaire
    if version and (current is None or current.version != version):
        return get_object_or_404(survey.questionnaires, version=version)
    if current is None:
        raise Http404("the survey has no questionnaire")
    return current
