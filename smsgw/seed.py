"""`smsgw db seed`: a synthetic, reproducible records database that looks real.

The reference records of fixtures/records/ are always loaded first, so that the documented
examples work on every seeded database; then `persons` synthetic persons, none of which shares
a key with a reference record. The same seed and count give the same content, whatever the
date: the synthetic world stands still on `AS_OF`.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import phonenumbers

from .commands import Month
from .importer import read_directory
from .progress import Progress
from .store import (DOSSIER_STATUSES, CardRow, DossierRow, PaidUpRow, PeriodRow, PersonRow, StoreError,
                    open_records)

# fixtures/records, installed as the package data `smsgw.reference` (pyproject.toml).
REFERENCE_DIR = Path(str(resources.files("smsgw.reference")))
AS_OF = date(2026, 10, 31)
BATCH = 20_000

# Province codes (BHXH numbers use 2 digits, personal ids 3), weighted roughly by population.
_PROVINCES = {
    "01": 8, "79": 9, "31": 2, "48": 1, "92": 1, "22": 1, "24": 2, "26": 1, "27": 1, "30": 2,
    "33": 1, "34": 2, "35": 1, "36": 2, "37": 1, "38": 3, "40": 3, "42": 1, "44": 1, "45": 1,
    "46": 1, "49": 1, "51": 1, "52": 1, "54": 1, "56": 1, "58": 1, "60": 1, "62": 1, "64": 1,
    "66": 2, "67": 1, "68": 1, "70": 1, "72": 1, "74": 2, "75": 3, "77": 1, "80": 2, "82": 2,
    "83": 1, "84": 1, "86": 1, "87": 2, "89": 2, "91": 2, "93": 1, "94": 1, "95": 1, "96": 1,
    "02": 1, "04": 1, "06": 1, "08": 1, "10": 1, "11": 1, "12": 1, "14": 1, "15": 1, "17": 1,
    "19": 1, "20": 1, "25": 1,
}
_FAMILY = {
    "Nguyễn": 38, "Trần": 11, "Lê": 9, "Phạm": 7, "Hoàng": 4, "Huỳnh": 3, "Phan": 4, "Vũ": 3,
    "Võ": 3, "Đặng": 2, "Bùi": 2, "Đỗ": 2, "Hồ": 1, "Ngô": 1, "Dương": 1, "Lý": 1, "Đinh": 1,
    "Trịnh": 1, "Mai": 1, "Lương": 1, "Cao": 1, "Tạ": 1, "Lâm": 1, "Châu": 1,
}
_MIDDLE = (
    ("Văn", "Văn", "Văn", "Hữu", "Đức", "Minh", "Quang", "Công", "Thành", "Ngọc", "Xuân", "Trọng", "Anh", "Gia"),
    ("Thị", "Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Kim", "Mỹ", "Phương", "Bích", "Thị Thu", "Thị Hồng", "Hải"),
)
_GIVEN = (
    ("An", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khang", "Khánh",
     "Kiên", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài", "Thắng",
     "Thành", "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng", "Việt", "Vinh", "Vũ"),
    ("Anh", "Châu", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Huệ", "Hương",
     "Lan", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhung", "Oanh", "Phương", "Quỳnh", "Tâm",
     "Thảo", "Thư", "Thủy", "Trang", "Trinh", "Tuyết", "Uyên", "Vân", "Yến"),
)
_CARRIER_PREFIXES = (
    "086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039",  # Viettel
    "088", "091", "094", "081", "082", "083", "084", "085",                              # VinaPhone
    "089", "090", "093", "070", "076", "077", "078", "079",                              # MobiFone
    "092", "056", "058",                                                                 # Vietnamobile
    "099", "059",                                                                        # Gmobile
)
_EMPLOYER_FORMS = ("Công ty TNHH", "Công ty CP", "Công ty TNHH MTV", "Doanh nghiệp tư nhân", "Chi nhánh Công ty CP")
_EMPLOYER_TRADES = ("Xây dựng", "Thương mại", "Dịch vụ", "May mặc", "Điện tử", "Vận tải", "Thực phẩm", "Công nghệ",
                    "Du lịch", "Cơ khí", "Dược phẩm", "Nhựa", "Da giày", "Thủy sản", "Bất động sản")
_EMPLOYER_NAMES = ("Hòa Bình", "Minh Phát", "An Khang", "Thành Công", "Phú Thịnh", "Hưng Thịnh", "Đại Việt",
                   "Sao Mai", "Tân Tiến", "Việt Úc", "Trường Sơn", "Hồng Hà", "Cửu Long", "Bình Minh", "Nam Á",
                   "Phương Đông", "Thái Dương", "Kim Long", "Quang Trung", "Bắc Hà", "Sài Gòn", "Hà Thành",
                   "Đông Á", "Vạn Xuân", "Hoàng Gia", "Thiên Phú", "Ánh Dương", "Lạc Hồng", "Gia Phát", "Tiến Đạt")
_PUBLIC_EMPLOYERS = ("Trường THPT {}", "Trường Tiểu học {}", "UBND phường {}", "Trung tâm Y tế {}",
                     "Bưu điện {}", "Chi cục Thuế {}", "Kho bạc Nhà nước {}")
_HOSPITALS = ("Bệnh viện Đa khoa {}", "Trung tâm Y tế {}", "Trạm Y tế phường {}", "Phòng khám Đa khoa {}",
              "Bệnh viện Quân y {}", "Bệnh viện Y học cổ truyền {}")
_PLACES = ("Hòa Bình", "Tân Phú", "Bình Thạnh", "Long Biên", "Cầu Giấy", "Hải Châu", "Ninh Kiều", "Lê Chân",
           "Thủ Đức", "Đống Đa", "Thanh Xuân", "Biên Hòa", "Thuận An", "Vĩnh Yên", "Hạ Long", "Mỹ Tho")
_CARD_GROUPS = ("DN", "HC", "HT", "TE", "GD", "HS", "SV", "CN", "HN", "CB", "XK", "NO", "TQ", "CH", "NN")
_CARD_LEVELS = "4444433221555"
_STATUS_WEIGHTS = (10, 20, 10, 30, 5, 25)
_VOLUNTARY_SHARE = 0.04   # persons paying voluntary social insurance
_LETTERS = "ABCDEGHKLMNPQRSTVX"

_FIRST_MONTH = Month(1995, 1).index   # social insurance records start in 1995
_BHTN_START = Month(2009, 1).index    # unemployment insurance started in January 2009
_LAST_MONTH = Month(AS_OF.year, AS_OF.month).index
_BIRTH_FIRST = date(1960, 1, 1).toordinal()
_BIRTH_SPAN = date(2007, 12, 31).toordinal() - _BIRTH_FIRST + 1


@dataclass(frozen=True)
class SeedSummary:
    """What a seed run wrote."""

    persons: int            # synthetic persons, as asked
    reference_persons: int  # hand-made persons of fixtures/records/
    periods: int
    cards: int
    dossiers: int
    seconds: float
    paid_up: int = 0        # voluntary participants with a paid-up date

    def __str__(self) -> str:
        return (f"{self.persons} persons (+{self.reference_persons} reference), {self.periods} periods, "
                f"{self.cards} cards, {self.dossiers} dossiers, {self.paid_up} paid-up dates")


async def seed_database(path: str | os.PathLike[str], persons: int, seed: int = 0, *,
                        progress: bool = True) -> SeedSummary:
    """Create the records database at `path` with the reference records and `persons` synthetic ones.

    `path` must not hold records yet (StoreError otherwise). A progress bar goes to stderr when
    `progress` is true and stderr is a terminal.
    """
    if persons < 0:
        raise ValueError("the number of persons cannot be negative")
    started = time.monotonic()
    reference = await read_directory(REFERENCE_DIR, None)
    world = _World(seed, reference_keys=(
        {row[0] for row in reference.persons},
        {row[1] for row in reference.persons if row[1]},
        {row[0] for row in reference.dossiers},
    ))
    batch = _Batch(reference.persons, reference.periods, reference.cards, reference.dossiers, reference.paid_up)
    written = {table: 0 for table in batch.tables()}
    sizes = [min(BATCH, persons - start) for start in range(0, persons, BATCH)]
    store = await open_records(path, create=True)
    try:
        async with store.bulk_load():
            with Progress(persons, "seeding persons", enabled=None if progress else False) as bar:
                # The reference records first; then SQLite writes each batch while a worker
                # thread generates the next one.
                for size in [*sizes, 0]:
                    _, upcoming = await asyncio.gather(store.write(**batch.tables()),
                                                       asyncio.to_thread(world.batch, size))
                    for table, rows in batch.tables().items():
                        written[table] += len(rows)
                    batch = upcoming
                    bar.advance(size)
    finally:
        await store.close()
    return SeedSummary(persons, len(reference.persons), written["periods"], written["cards"], written["dossiers"],
                       seconds=time.monotonic() - started, paid_up=written["paid_up"])


@dataclass
class _Batch:
    persons: list[PersonRow]
    periods: list[PeriodRow]
    cards: list[CardRow]
    dossiers: list[DossierRow]
    paid_up: list[PaidUpRow]

    def tables(self) -> dict[str, list]:
        return {"persons": self.persons, "periods": self.periods, "cards": self.cards, "dossiers": self.dossiers,
                "paid_up": self.paid_up}


class _World:
    """Generates synthetic persons one after another; unique keys come from keyed permutations."""

    def __init__(self, seed: int, reference_keys: tuple[set[str], set[str], set[str]]) -> None:
        self.rng = random.Random(seed)
        # Paid-up dates draw from a stream of their own, so that the rest of the world stays as it
        # was before they existed.
        self.voluntary = random.Random(f"{seed}:voluntary")
        rng = self.rng
        self.taken_ssns, self.taken_personal_ids, self.taken_dossiers = reference_keys
        self.ssn_serials = _Permutation(4, rng)       # 10^8 serials after the province code
        self.personal_serials = _Permutation(3, rng)  # 10^6 serials within a (place, sex, year) bucket
        self.dossier_serials = _Permutation(5, rng)   # 10^10: office number and serial
        self.next_person = 0
        self.next_dossier = 0
        self.bucket_counts: dict[str, int] = {}
        self.provinces = _weighted(_PROVINCES)
        self.families = _weighted(_FAMILY)
        self.phone_prefixes = _valid_phone_prefixes()
        self.employers = [f"{form} {trade} {name}" for form in _EMPLOYER_FORMS
                          for trade in _EMPLOYER_TRADES for name in _EMPLOYER_NAMES]
        self.employers += [pattern.format(place) for pattern in _PUBLIC_EMPLOYERS for place in _PLACES]
        self.hospitals = [pattern.format(place) for pattern in _HOSPITALS for place in _PLACES]
        self.statuses = [status for status, weight in zip(DOSSIER_STATUSES, _STATUS_WEIGHTS) for _ in range(weight)]

    def batch(self, size: int) -> _Batch:
        batch = _Batch([], [], [], [], [])
        for _ in range(size):
            self._person(batch)
        return batch

    def _person(self, batch: _Batch) -> None:
        rand = self.rng.random
        province = self.provinces[int(rand() * len(self.provinces))]
        ssn = self._ssn(province)
        female = rand() < 0.5
        born = date.fromordinal(_BIRTH_FIRST + int(rand() * _BIRTH_SPAN))
        personal_id = self._personal_id(province, female, born.year) if rand() < 0.85 else None
        middle = _MIDDLE[female][int(rand() * len(_MIDDLE[female]))]
        given = _GIVEN[female][int(rand() * len(_GIVEN[female]))]
        name = f"{self.families[int(rand() * len(self.families))]} {middle} {given}"
        phone = None
        if rand() < 0.88:
            prefix = self.phone_prefixes[int(rand() * len(self.phone_prefixes))]
            phone = f"84{prefix[1:]}{int(rand() * 1_000_000):06d}"
        batch.persons.append((ssn, personal_id, name, born.isoformat(), phone))
        if rand() < 0.9:
            self._career(ssn, born, batch.periods)
        if rand() < 0.8:
            self._cards(ssn, province, batch.cards)
        if rand() < 0.3:
            self._dossiers(ssn, batch.dossiers)
        if self.voluntary.random() < _VOLUNTARY_SHARE:
            self._paid_up(ssn, batch.paid_up)

    def _paid_up(self, ssn: str, paid_up: list[PaidUpRow]) -> None:
        """A voluntary participant paid up to the end of a month within a year of AS_OF."""
        month = Month.from_index(_LAST_MONTH - 12 + int(self.voluntary.random() * 25))
        following = Month.from_index(month.index + 1)
        paid_until = date(following.year, following.month, 1).toordinal() - 1
        paid_up.append((ssn, date.fromordinal(paid_until).isoformat()))

    def _ssn(self, province: str) -> str:
        while True:
            serial = self.ssn_serials(self.next_person)
            self.next_person += 1
            ssn = f"{province}{serial:08d}"
            if ssn not in self.taken_ssns:
                return ssn

    def _personal_id(self, province: str, female: bool, year: int) -> str:
        """`0PP` province, sex and century digit, 2-digit birth year, 6 digits unique in that bucket."""
        bucket = f"0{province}{(year >= 2000) * 2 + female}{year % 100:02d}"
        while True:
            count = self.bucket_counts.get(bucket, 0)
            self.bucket_counts[bucket] = count + 1
            personal_id = f"{bucket}{self.personal_serials(count + int(bucket)):06d}"
            if personal_id not in self.taken_personal_ids:
                return personal_id

    def _career(self, ssn: str, born: date, periods: list[PeriodRow]) -> None:
        """Jobs one after another with gaps, sometimes a second job at the same time."""
        rand = self.rng.random
        month = max(_FIRST_MONTH, (born.year + 18 + int(rand() * 8)) * 12 + int(rand() * 12))
        for _ in range(1 + int(rand() * 5)):
            if month > _LAST_MONTH:
                return
            end = min(month + 5 + int(rand() * rand() * 150), _LAST_MONTH)
            employer = int(rand() * len(self.employers))
            self._job(ssn, self.employers[employer], month, end, periods)
            if rand() < 0.12 and end - month > 6:
                # Starts after the main job and works for another employer: never the same row.
                side_start = month + 1 + int(rand() * (end - month - 1))
                side_employer = self.employers[(employer + 1 + int(rand() * 100)) % len(self.employers)]
                self._job(ssn, side_employer, side_start, min(side_start + 3 + int(rand() * 36), _LAST_MONTH), periods)
            month = end + 1 + (0 if rand() < 0.5 else 1 + int(rand() * 36))

    def _job(self, ssn: str, employer: str, start: int, end: int, periods: list[PeriodRow]) -> None:
        rand = self.rng.random
        periods.append((ssn, "BHXH", employer, start, end))
        if rand() < 0.85:
            bhtn_start = max(start + (int(rand() * 4) if rand() < 0.3 else 0), _BHTN_START)
            row = (ssn, "BHTN", employer, bhtn_start, end)
            # A side job and a later main job at one employer, both begun before BHTN existed
            # and both running to the last month, would give the same row twice (seen at 10M).
            if bhtn_start <= end and row not in periods[-24:]:
                periods.append(row)

    def _cards(self, ssn: str, province: str, cards: list[CardRow]) -> None:
        """1-3 cards of distinct groups, one after another; the last one still valid 3 times in 4."""
        rand = self.rng.random
        if rand() < 0.75:
            start_year, end_year = AS_OF.year - int(rand() * 3), AS_OF.year + 1 + int(rand() * 3)
        else:
            end_year = 2012 + int(rand() * (AS_OF.year - 2012))
            start_year = end_year - int(rand() * 3)
        for group in self.rng.sample(_CARD_GROUPS, 1 + int(rand() * rand() * 3)):
            level = _CARD_LEVELS[int(rand() * len(_CARD_LEVELS))]
            hospital = self.hospitals[int(rand() * len(self.hospitals))]
            cards.append((f"{group}{level}{province}{ssn}", ssn, f"{start_year}-01-01", f"{end_year}-12-31", hospital))
            end_year = start_year - 1
            start_year = end_year - int(rand() * 3)

    def _dossiers(self, ssn: str, dossiers: list[DossierRow]) -> None:
        rand = self.rng.random
        for _ in range(1 + (rand() < 0.15)):
            while True:
                office_serial = self.dossier_serials(self.next_dossier)
                self.next_dossier += 1
                year = 2015 + int(rand() * (AS_OF.year - 2015 + 1))
                letter = _LETTERS[int(rand() * len(_LETTERS))]
                code = f"{office_serial // 100_000:05d}.{letter}/{year}/{office_serial % 100_000:05d}"
                if code not in self.taken_dossiers:
                    break
            updated = date(year, 1, 1).toordinal() + int(rand() * 365)
            updated_at = date.fromordinal(min(updated, AS_OF.toordinal())).isoformat()
            status = self.statuses[int(rand() * len(self.statuses))]
            dossiers.append((code, ssn, status, updated_at))


class _Permutation:
    """A keyed bijection of [0, 10^(2*half_digits)): a 4-round Feistel network on decimal halves."""

    def __init__(self, half_digits: int, rng: random.Random) -> None:
        self.half = 10 ** half_digits
        self.keys = [rng.randrange(1 << 30) for _ in range(4)]

    def __call__(self, value: int) -> int:
        half = self.half
        left, right = divmod(value % (half * half), half)
        for key in self.keys:
            left, right = right, (left + (right * 2_654_435_761 ^ key) % 1_000_003) % half
        return left * half + right


def _weighted(weights: dict[str, int]) -> list[str]:
    return [value for value, weight in weights.items() for _ in range(weight)]


def _valid_phone_prefixes() -> list[str]:
    """Carrier prefixes with their 4th digit, kept only where phonenumbers knows mobile numbers."""
    prefixes = []
    for prefix in _CARRIER_PREFIXES:
        for digit in "0123456789":
            number = phonenumbers.parse(f"{prefix}{digit}123456", "VN")
            if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE:
                prefixes.append(f"{prefix}{digit}")
    if not prefixes:
        raise StoreError("the phonenumbers metadata knows none of the Vietnamese carrier prefixes")
    return prefixes
