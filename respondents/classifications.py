"""Korean classifications used by the frame: sido (regions), size classes, KSIC divisions."""

import re

from django.db import models
from django.utils.translation import gettext_lazy as _


class SizeClass(models.TextChoices):
    # 소상공인 / 소기업 / 중기업 / 중견기업 as in the seed survey's published size shares.
    MICRO = "micro", _("micro enterprise")
    SMALL = "small", _("small enterprise")
    MEDIUM = "medium", _("medium enterprise")
    MIDSIZE = "midsize", _("mid-sized enterprise")


class Region(models.TextChoices):
    SEOUL = "Seoul", _("Seoul")
    BUSAN = "Busan", _("Busan")
    DAEGU = "Daegu", _("Daegu")
    INCHEON = "Incheon", _("Incheon")
    GWANGJU = "Gwangju", _("Gwangju")
    DAEJEON = "Daejeon", _("Daejeon")
    ULSAN = "Ulsan", _("Ulsan")
    SEJONG = "Sejong", _("Sejong")
    GYEONGGI = "Gyeonggi", _("Gyeonggi")
    GANGWON = "Gangwon", _("Gangwon")
    CHUNGBUK = "Chungbuk", _("Chungbuk")
    CHUNGNAM = "Chungnam", _("Chungnam")
    JEONBUK = "Jeonbuk", _("Jeonbuk")
    JEONNAM = "Jeonnam", _("Jeonnam")
    GYEONGBUK = "Gyeongbuk", _("Gyeongbuk")
    GYEONGNAM = "Gyeongnam", _("Gyeongnam")
    JEJU = "Jeju", _("Jeju")


_REGION_ALIASES: dict[str, list[str]] = {
    "Seoul": [
        "서울",
        "서울시",
        "서울특별시",
        "Seoul-si",
        "Seoul Special City",
        "Seoul-teukbyeolsi",
    ],
    "Busan": ["부산", "부산시", "부산광역시", "Busan Metropolitan City", "Busan-gwangyeoksi"],
    "Daegu": ["대구", "대구시", "대구광역시", "Daegu Metropolitan City", "Daegu-gwangyeoksi"],
    "Incheon": ["인천", "인천시", "인천광역시", "Incheon Metropolitan City"],
    "Gwangju": ["광주", "광주시", "광주광역시", "Gwangju Metropolitan City"],
    "Daejeon": ["대전", "대전시", "대전광역시", "Daejeon Metropolitan City"],
    "Ulsan": ["울산", "울산시", "울산광역시", "Ulsan Metropolitan City"],
    "Sejong": [
        "세종",
        "세종시",
        "세종특별자치시",
        "Sejong-si",
        "Sejong City",
        "Sejong Special Self-Governing City",
    ],
    "Gyeonggi": ["경기", "경기도", "Gyeonggi-do", "Gyeonggi Province", "Kyonggi-do"],
    "Gangwon": [
        "강원",
        "강원도",
        "강원특별자치도",
        "Gangwon-do",
        "Gangwon State",
        "Gangwon Province",
        "Gangwon Special Self-Governing Province",
    ],
    "Chungbuk": ["충북", "충청북도", "Chungcheongbuk-do", "North Chungcheong", "Chungcheong-bukdo"],
    "Chungnam": ["충남", "충청남도", "Chungcheongnam-do", "South Chungcheong", "Chungcheong-namdo"],
    "Jeonbuk": [
        "전북",
        "전라북도",
        "전북특별자치도",
        "Jeollabuk-do",
        "North Jeolla",
        "Jeonbuk State",
        "Jeonbuk Special Self-Governing Province",
        "Jeonrabuk-do",
    ],
    "Jeonnam": ["전남", "전라남도", "Jeollanam-do", "South Jeolla", "Jeonranam-do"],
    "Gyeongbuk": ["경북", "경상북도", "Gyeongsangbuk-do", "North Gyeongsang"],
    "Gyeongnam": ["경남", "경상남도", "Gyeongsangnam-do", "South Gyeongsang"],
    "Jeju": [
        "제주",
        "제주도",
        "제주특별자치도",
        "Jeju-do",
        "Jeju Province",
        "Jeju Special Self-Governing Province",
    ],
}


def _normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).casefold()


_REGION_LOOKUP = {
    _normalise(alias): canonical
    for canonical, aliases in _REGION_ALIASES.items()
    for alias in [canonical, *aliases]
}


def canonical_region(text: str) -> str | None:
    """The canonical English short name of a sido, from any of its usual spellings."""
    return _REGION_LOOKUP.get(_normalise(text))


REGION_AREAS: dict[str, str] = {
    "Seoul": "capital",
    "Incheon": "capital",
    "Gyeonggi": "capital",
    "Daejeon": "chungcheong",
    "Sejong": "chungcheong",
    "Chungbuk": "chungcheong",
    "Chungnam": "chungcheong",
    "Gwangju": "honam",
    "Jeonbuk": "honam",
    "Jeonnam": "honam",
    "Daegu": "daegyeong",
    "Gyeongbuk": "daegyeong",
    "Busan": "dongnam",
    "Ulsan": "dongnam",
    "Gyeongnam": "dongnam",
    "Gangwon": "gangwon_jeju",
    "Jeju": "gangwon_jeju",
}

REGION_AREA_LABELS = {
    "capital": _("Capital area"),
    "chungcheong": _("Chungcheong"),
    "honam": _("Honam"),
    "daegyeong": _("Daegu-Gyeongbuk"),
    "dongnam": _("Dongnam (south-east)"),
    "gangwon_jeju": _("Gangwon and Jeju"),
}

# KSIC (10th revision) section C: manufacturing divisions 10-34.
KSIC_DIVISIONS: dict[str, str] = {
    "10": "food_beverage",
    "11": "food_beverage",
    "12": "food_beverage",
    "13": "textile_apparel",
    "14": "textile_apparel",
    "15": "textile_apparel",
    "16": "wood_paper_print",
    "17": "wood_paper_print",
    "18": "wood_paper_print",
    "19": "chemical",
    "20": "chemical",
    "21": "chemical",
    "22": "rubber_mineral",
    "23": "rubber_mineral",
    "24": "metal",
    "25": "metal",
    "26": "electronics",
    "27": "electronics",
    "28": "machinery",
    "29": "machinery",
    "30": "transport",
    "31": "transport",
    "32": "other_manufacturing",
    "33": "other_manufacturing",
    "34": "other_manufacturing",
}

INDUSTRY_GROUP_LABELS = {
    "food_beverage": _("Food, beverages and tobacco"),
    "textile_apparel": _("Textiles, apparel and leather"),
    "wood_paper_print": _("Wood, paper and printing"),
    "chemical": _("Petroleum, chemicals and pharmaceuticals"),
    "rubber_mineral": _("Rubber, plastics and non-metallic minerals"),
    "metal": _("Basic and fabricated metals"),
    "electronics": _("Electronics, computers and instruments"),
    "machinery": _("Electrical equipment and machinery"),
    "transport": _("Motor vehicles and other transport"),
    "other_manufacturing": _("Furniture, other manufacturing and repair"),
}

# The variables derived from a frame unit's columns, defined once: the name, its source
# column and its map. A frame that carries a column of the same name is the authority: its
# value is used as given, and derivation fills only what it leaves blank (see
# respondents.models.frame_variable). A value the map lacks is UNKNOWN.
UNKNOWN = "other"
DERIVED: dict[str, tuple[str, dict[str, str]]] = {
    "industry_group": ("ksic", KSIC_DIVISIONS),  # by the code's 2-digit division
    "region_area": ("region", REGION_AREAS),
}


def derive(name: str, source_value: str, unknown: str | None = UNKNOWN) -> str | None:
    """A derived variable from its source column's value (a KSIC code or its division,
    a region); `unknown` where the map lacks it (None: the sample design refuses it)."""
    source, mapping = DERIVED[name]
    key = source_value[:2] if source == "ksic" else source_value
    return mapping.get(key, unknown)


KSIC_RE = re.compile(r"^\d{5}$")


def ksic_problem(code: str) -> str | None:
    """Why a KSIC code is unusable for this frame, or None when it is a manufacturing code."""
    if not KSIC_RE.match(code):
        return str(_("must be a 5-digit KSIC code"))
    if code[:2] not in KSIC_DIVISIONS:
        return str(_("is not a manufacturing code (KSIC divisions 10 to 34)"))
    return None


# Labels of the variables a frame unit can be grouped by, for tables and charts.
VALUE_LABELS = {
    "size_class": dict(SizeClass.choices),
    "region": dict(Region.choices),
    "region_area": REGION_AREA_LABELS,
    "industry_group": INDUSTRY_GROUP_LABELS,
}
