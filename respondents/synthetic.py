"""A seeded synthetic frame of Korean small and medium manufacturers, streamed row by row.

The shares are rough stand-ins for the real register, not official figures: size classes as
published for the seed survey (docs/methodology.md, sec. 0); KSIC divisions and regions shaped
like the Mining and Manufacturing Survey (many firms in food, rubber and plastics, fabricated
metals, machinery and electronics; a third of firms in Gyeonggi).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openpyxl

from config.spreadsheets import csv_writer, safe_row

from .classifications import KSIC_DIVISIONS, REGION_AREAS
from .frame_import import REQUIRED_COLUMNS

DEFAULT_SEED = 20250428
CHUNK_ROWS = 10_000
# The frame's required columns, then two attributes a register often carries.
COLUMNS = (*REQUIRED_COLUMNS, "industry_group", "region_area")

SIZE_SHARES = {"micro": 61.8, "small": 27.2, "medium": 9.7, "midsize": 1.3}
EMPLOYEE_RANGES = {"micro": (1, 9), "small": (10, 49), "medium": (50, 299), "midsize": (300, 1000)}
CORPORATION_SHARES = {"micro": 0.45, "small": 0.85, "medium": 0.97, "midsize": 1.0}
DIVISION_SHARES = {
    "10": 9.0, "11": 0.8, "12": 0.02, "13": 4.5, "14": 3.0, "15": 1.0, "16": 1.5, "17": 2.2,
    "18": 2.0, "19": 0.1, "20": 4.5, "21": 0.8, "22": 8.5, "23": 4.0, "24": 3.5, "25": 16.5,
    "26": 4.5, "27": 3.0, "28": 6.5, "29": 13.5, "30": 5.5, "31": 1.5, "32": 2.0, "33": 2.0,
    "34": 0.5,
}  # fmt: skip
REGION_SHARES = {
    "Gyeonggi": 32.0, "Gyeongnam": 10.5, "Gyeongbuk": 8.5, "Incheon": 7.0, "Chungnam": 6.6,
    "Busan": 6.3, "Seoul": 5.8, "Daegu": 5.6, "Chungbuk": 5.0, "Jeonbuk": 3.0, "Jeonnam": 2.8,
    "Ulsan": 2.5, "Gwangju": 2.0, "Daejeon": 1.7, "Gangwon": 1.6, "Sejong": 0.5, "Jeju": 0.4,
}  # fmt: skip
# Written in Korean, as a ministry register would be; the importer maps any spelling.
REGION_NAMES = {
    "Seoul": "서울특별시", "Busan": "부산광역시", "Daegu": "대구광역시", "Incheon": "인천광역시",
    "Gwangju": "광주광역시", "Daejeon": "대전광역시", "Ulsan": "울산광역시",
    "Sejong": "세종특별자치시", "Gyeonggi": "경기도", "Gangwon": "강원특별자치도",
    "Chungbuk": "충청북도", "Chungnam": "충청남도", "Jeonbuk": "전북특별자치도",
    "Jeonnam": "전라남도", "Gyeongbuk": "경상북도", "Gyeongnam": "경상남도",
    "Jeju": "제주특별자치도",
}  # fmt: skip
AREA_CODES = {
    "Seoul": "02", "Busan": "051", "Daegu": "053", "Incheon": "032", "Gwangju": "062",
    "Daejeon": "042", "Ulsan": "052", "Sejong": "044", "Gyeonggi": "031", "Gangwon": "033",
    "Chungbuk": "043", "Chungnam": "041", "Jeonbuk": "063", "Jeonnam": "061",
    "Gyeongbuk": "054", "Gyeongnam": "055", "Jeju": "064",
}  # fmt: skip

# Company names: two syllables and a trade word, with their romanisation for the web domain.
FIRST_SYLLABLES = [
    ("대", "dae"), ("한", "han"), ("삼", "sam"), ("동", "dong"), ("세", "se"), ("우", "woo"),
    ("태", "tae"), ("신", "shin"), ("제", "je"), ("성", "sung"), ("영", "young"), ("진", "jin"),
    ("광", "kwang"), ("금", "geum"), ("명", "myung"), ("보", "bo"), ("상", "sang"), ("서", "seo"),
    ("선", "sun"), ("수", "su"), ("승", "seung"), ("아", "a"), ("연", "yeon"), ("유", "yu"),
    ("일", "il"), ("정", "jung"), ("중", "jung"), ("청", "cheong"), ("화", "hwa"), ("효", "hyo"),
    ("경", "kyung"), ("국", "kuk"), ("남", "nam"), ("덕", "deok"), ("미", "mi"), ("백", "baek"),
    ("부", "bu"), ("새", "sae"), ("인", "in"), ("장", "jang"), ("천", "cheon"), ("평", "pyeong"),
    ("해", "hae"), ("현", "hyun"), ("흥", "heung"), ("용", "yong"), ("원", "won"), ("풍", "pung"),
]  # fmt: skip
SECOND_SYLLABLES = [
    ("성", "sung"), ("빛", "bit"), ("우", "woo"), ("양", "yang"), ("진", "jin"), ("일", "il"),
    ("영", "young"), ("광", "kwang"), ("신", "shin"), ("화", "hwa"), ("원", "won"), ("한", "han"),
    ("창", "chang"), ("흥", "heung"), ("도", "do"), ("림", "rim"), ("명", "myung"), ("산", "san"),
    ("아", "a"), ("인", "in"), ("정", "jung"), ("주", "ju"), ("천", "cheon"), ("하", "ha"),
    ("호", "ho"), ("윤", "yoon"), ("안", "an"), ("경", "kyung"), ("전", "jeon"), ("솔", "sol"),
    ("보", "bo"), ("해", "hae"), ("동", "dong"), ("테", "te"), ("미", "mi"), ("룡", "ryong"),
]  # fmt: skip
TRADE_WORDS = {
    "food_beverage": [("식품", "food"), ("푸드", "food"), ("제과", "jegwa"), ("농산", "nongsan")],
    "textile_apparel": [("섬유", "textile"), ("어패럴", "apparel"), ("방직", "bangjik"),
                        ("패션", "fashion"), ("피혁", "leather")],
    "wood_paper_print": [("제지", "paper"), ("인쇄", "print"), ("목재", "wood"), ("포장", "pack")],
    "chemical": [("화학", "chem"), ("케미칼", "chemical"), ("바이오", "bio"), ("제약", "pharm"),
                 ("소재", "material")],
    "rubber_mineral": [("플라스틱", "plastic"), ("고무", "rubber"), ("세라믹", "ceramic"),
                       ("폴리텍", "polytech"), ("산업", "ind")],
    "metal": [("정밀", "precision"), ("금속", "metal"), ("메탈", "metal"), ("기공", "gigong"),
              ("스틸", "steel"), ("단조", "forging")],
    "electronics": [("전자", "elec"), ("테크", "tech"), ("시스템", "system"), ("옵틱스", "optics"),
                    ("일렉트로닉스", "electronics")],
    "machinery": [("기계", "machinery"), ("엔지니어링", "eng"), ("정공", "jeonggong"),
                  ("전기", "electric"), ("오토메이션", "automation")],
    "transport": [("오토텍", "autotech"), ("모터스", "motors"), ("정밀", "precision"),
                  ("산업", "ind"), ("조선", "marine")],
    "other_manufacturing": [("가구", "furniture"), ("공업", "ind"), ("물산", "mulsan"),
                            ("엔지니어링", "eng")],
}  # fmt: skip
LEGAL_FORMS = ["(주){}", "{} 주식회사", "주식회사 {}"]
LEGAL_FORM_SHARES = [0.65, 0.2, 0.15]
# Tax-office codes 101-999 times these type codes (01-79 individuals, 81-88 corporations).
BUSINESS_TYPES = np.array([1, 5, 13, 21, 81, 85, 86, 88])
BUSINESS_ID_SPACE = 899 * len(BUSINESS_TYPES) * 10_000
BUSINESS_ID_STEP = 2_654_435_761  # a prime that does not divide the space: i -> step*i is 1-to-1
CHECK_WEIGHTS = np.array([1, 3, 7, 1, 3, 7, 1, 3, 5])


def frame_rows(rows: int, *, seed: int = DEFAULT_SEED) -> Iterator[list[str]]:
    """The header, then `rows` firms; the same seed always gives the same frame."""
    if rows > BUSINESS_ID_SPACE:
        raise ValueError(f"at most {BUSINESS_ID_SPACE} rows")
    rng = np.random.default_rng(seed)
    offset = int(rng.integers(BUSINESS_ID_SPACE))
    yield list(COLUMNS)
    for start in range(0, rows, CHUNK_ROWS):
        yield from _chunk(rng, np.arange(start, min(start + CHUNK_ROWS, rows)), offset)


# --- the register a year later ----------------------------------------------------------------

NEXT_YEAR_SEED = 20260428
# Shares of last year's firms, rough stand-ins for a year of the register: closures, firms
# that change size class, region or industry, new business numbers, mergers and splits; and
# births as a share of last year's frame.
CLOSURES, BIRTHS = 0.05, 0.06
SIZE_MOVES, REGION_MOVES, INDUSTRY_MOVES = 0.03, 0.01, 0.01
RENUMBERED, MERGERS, SPLITS = 0.0005, 0.0003, 0.0003
SIZE_ORDER = list(SIZE_SHARES)
LINK_HEADER = ["old_business_id", "new_business_id", "kind"]


@dataclass
class NextYear:
    """Next year's frame (header first) and the mapping of changed business IDs."""

    rows: list[list[str]]
    links: list[list[str]]


def next_year(rows: int, *, seed: int = DEFAULT_SEED, next_seed: int = NEXT_YEAR_SEED) -> NextYear:
    """The frame of `frame_rows(rows, seed=seed)` a year later, the same for the same seeds:
    firms closed, merged into the firm before them, split in two, renumbered, changed in
    size class, region or industry, their headcount and sales drifted; new firms after."""
    last = frame_rows(rows, seed=seed)
    out = NextYear([next(last)], [LINK_HEADER])
    rng = np.random.default_rng(next_seed)
    offset = int(np.random.default_rng(seed).integers(BUSINESS_ID_SPACE))
    fresh = itertools.count(rows)  # row indexes beyond last year's: unused business IDs
    rolls = rng.random((rows, 4))
    renumbered: set[str] = set()
    for row, roll in zip(last, rolls, strict=True):
        if roll[0] < CLOSURES:
            continue
        if roll[0] < CLOSURES + MERGERS:
            # Into the firm before it, unless that one is new or newly numbered (a closure).
            target = out.rows[-1][0]
            if len(out.rows) > 1 and target not in renumbered:
                out.links.append([row[0], target, "merger"])
            continue
        row = _moved(row, roll[1], rng)
        if roll[2] < RENUMBERED:
            new = business_ids(np.array([next(fresh)]), offset)[0]
            out.links.append([row[0], new, "renumbered"])
            renumbered.add(new)
            row = [new, *row[1:]]
        elif roll[2] < RENUMBERED + SPLITS:
            new = business_ids(np.array([next(fresh)]), offset)[0]
            out.links.append([row[0], new, "split"])
            out.rows.append([new, f"{row[1]} 제2공장", *row[2:7], "", "", *row[9:]])
        out.rows.append(_drifted(row, roll[3]))
    born = np.array([next(fresh) for _ in range(round(BIRTHS * rows))], dtype=np.int64)
    for start in range(0, len(born), CHUNK_ROWS):
        out.rows.extend(_chunk(rng, born[start : start + CHUNK_ROWS], offset))
    return out


def _moved(row: list[str], roll: float, rng: np.random.Generator) -> list[str]:
    """A firm that changed size class, region or industry (or none of them)."""
    row = list(row)
    if roll < SIZE_MOVES:
        # Growth is likelier than shrinking; the headcount lands at the new class's edge.
        position = SIZE_ORDER.index(row[3])
        step = 1 if (rng.random() < 0.7 and position < 3) or position == 0 else -1
        size = SIZE_ORDER[position + step]
        low, high = EMPLOYEE_RANGES[size]
        row[3], row[5] = size, str(low if step > 0 else high)
    elif roll < SIZE_MOVES + REGION_MOVES:
        region = _choice(rng, REGION_SHARES, 1)[0]
        row[4], row[10] = REGION_NAMES[region], REGION_AREAS[region]
    elif roll < SIZE_MOVES + REGION_MOVES + INDUSTRY_MOVES:
        division = _choice(rng, DIVISION_SHARES, 1)[0]
        row[2], row[9] = division + row[2][2:], KSIC_DIVISIONS[division]
    return row


def _drifted(row: list[str], roll: float) -> list[str]:
    """Headcount and sales a year on: most firms within a few per cent, inside their class."""
    low, high = EMPLOYEE_RANGES[row[3]]
    employees = min(max(round(int(row[5]) * (0.95 + 0.1 * roll)), low), high)
    sales = f"{float(row[6]) * (0.97 + 0.1 * roll):.1f}" if row[6] else ""
    return [*row[:5], str(employees), sales, *row[7:]]


def write_next_year(frame: Path, links: Path, *, rows: int, seed: int = DEFAULT_SEED) -> NextYear:
    """Write next year's frame and its mapping of changed business IDs as CSV."""
    found = next_year(rows, seed=seed)
    for path, lines in ((frame, found.rows), (links, found.links)):
        with open(path, "w", encoding="utf-8", newline="") as out:
            csv_writer(out).writerows(lines)
    return found


def write_frame(
    path: Path,
    *,
    rows: int,
    seed: int = DEFAULT_SEED,
    file_format: str = "csv",
    encoding: str = "utf-8",
) -> None:
    """Write the synthetic frame as CSV (in `encoding`) or XLSX, one row at a time."""
    if file_format == "xlsx":
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("frame")
        lines = frame_rows(rows, seed=seed)
        sheet.append(next(lines))
        for line in lines:
            sheet.append(safe_row(_typed(line)))
        book.save(path)
        return
    with open(path, "w", encoding=encoding, newline="") as out:
        csv_writer(out).writerows(frame_rows(rows, seed=seed))


def _typed(line: list[str]) -> list[str | int | float | None]:
    """A row as a spreadsheet holds it: employees and sales as numbers."""
    employees, sales = line[5], line[6]
    return [*line[:5], int(employees), float(sales) if sales else None, *line[7:]]


def business_ids(index: np.ndarray, offset: int) -> list[str]:
    """Distinct valid-format registration numbers (with the real check digit) for row indexes."""
    code = (index.astype(np.int64) * BUSINESS_ID_STEP + offset) % BUSINESS_ID_SPACE
    office = 101 + code // (len(BUSINESS_TYPES) * 10_000)
    kind = BUSINESS_TYPES[(code // 10_000) % len(BUSINESS_TYPES)]
    serial = code % 10_000
    number = office * 1_000_000 + kind * 10_000 + serial
    digits = (number[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check = (10 - ((digits * CHECK_WEIGHTS).sum(axis=1) + digits[:, 8] * 5 // 10) % 10) % 10
    return [
        f"{n // 1_000_000:03d}-{n // 10_000 % 100:02d}-{n % 10_000:04d}{c}"
        for n, c in zip(number.tolist(), check.tolist(), strict=True)
    ]


def _choice(rng: np.random.Generator, shares: dict[str, float], size: int) -> list[str]:
    keys = list(shares)
    weights = np.array(list(shares.values()))
    return [keys[i] for i in rng.choice(len(keys), size=size, p=weights / weights.sum())]


def _chunk(rng: np.random.Generator, index: np.ndarray, offset: int) -> Iterator[list[str]]:
    size = len(index)
    sizes = _choice(rng, SIZE_SHARES, size)
    divisions = _choice(rng, DIVISION_SHARES, size)
    regions = _choice(rng, REGION_SHARES, size)
    employees = _employees(rng, sizes)
    # Sales per employee around 250 million won, spread log-normally.
    sales = employees * np.exp(rng.normal(np.log(250), 0.7, size))
    has_sales = rng.random(size) > 0.05
    ksic_tail = rng.integers([1, 1, 1], [5, 4, 4], size=(size, 3))
    ids = business_ids(index, offset)
    names = _names(rng, sizes, divisions)
    email_numbers = rng.integers(1, 1000, size)
    has_email = rng.random(size) > 0.08
    phone_middle = rng.integers(200, 10_000, size)
    phone_last = rng.integers(0, 10_000, size)
    has_phone = rng.random(size) > 0.03
    for i in range(size):
        name, domain = names[i]
        region = regions[i]
        yield [
            ids[i],
            name,
            divisions[i] + "".join(map(str, ksic_tail[i])),
            sizes[i],
            REGION_NAMES[region],
            str(employees[i]),
            f"{sales[i]:.1f}" if has_sales[i] else "",
            f"info@{domain}{email_numbers[i]}.co.kr" if has_email[i] else "",
            f"{AREA_CODES[region]}-{phone_middle[i]}-{phone_last[i]:04d}" if has_phone[i] else "",
            KSIC_DIVISIONS[divisions[i]],
            REGION_AREAS[region],
        ]


def _employees(rng: np.random.Generator, sizes: list[str]) -> np.ndarray:
    # Log-uniform within each class: most firms sit near the bottom of their class.
    low = np.array([EMPLOYEE_RANGES[s][0] for s in sizes])
    high = np.array([EMPLOYEE_RANGES[s][1] for s in sizes])
    drawn = np.exp(rng.uniform(np.log(low), np.log(high + 1)))
    return np.minimum(np.floor(drawn).astype(np.int64), high)


def _names(
    rng: np.random.Generator, sizes: list[str], divisions: list[str]
) -> list[tuple[str, str]]:
    """Company names and their romanised web names, e.g. ("(주)대성정밀", "daesungprecision")."""
    size = len(sizes)
    first = rng.integers(len(FIRST_SYLLABLES), size=size)
    second = rng.integers(len(SECOND_SYLLABLES), size=size)
    trade = rng.random(size)
    corporate = rng.random(size)
    form = rng.choice(len(LEGAL_FORMS), size=size, p=LEGAL_FORM_SHARES)
    names = []
    for i in range(size):
        words = TRADE_WORDS[KSIC_DIVISIONS[divisions[i]]]
        word, word_roman = words[int(trade[i] * len(words))]
        (a, a_roman), (b, b_roman) = FIRST_SYLLABLES[first[i]], SECOND_SYLLABLES[second[i]]
        stem = f"{a}{b}{word}"
        if corporate[i] < CORPORATION_SHARES[sizes[i]]:
            stem = LEGAL_FORMS[form[i]].format(stem)
        names.append((stem, f"{a_roman}{b_roman}{word_roman}"))
    return names
