"""Deterministic TikTok-like content for the offline sandbox, with personal-data ground truth.

``SandboxContent.generate(seed)`` builds profiles, posts and hashtags whose JSON mirrors the
real web data (REFERENCE §3 and the quirks in ``fixtures/README.md``): item ``createTime`` is a
string, ``stats`` are ints except ``collectCount``, ``statsV2`` are strings plus
``repostCount``, ``int(id) >> 32`` is the creation time, ``textExtra`` offsets point into
``desc``. Bios and captions carry realistic personal data (emails, international phone
numbers, @handles, person names) so the privacy shield can be tested against an exact answer:
``pii_values()`` is every such value the site serves.

Everything comes from one ``random.Random(seed)``; no global random and no clock, so the same
seed always yields byte-identical content. Dates are relative to the fixed ``REFERENCE_TIME``.

``textExtra`` offsets are Python string indices (code points). Non-BMP characters (most emoji)
are only ever placed after the last entity of a caption, so the offsets are also valid UTF-16
offsets for JavaScript consumers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "REFERENCE_TIME",
    "SandboxContent",
    "SandboxHashtag",
    "SandboxPost",
    "SandboxProfile",
]

#: Fixed "now" of the sandbox: posts are created within the 60 days before it.
REFERENCE_TIME = datetime(2026, 11, 28, tzinfo=UTC)
_REFERENCE_TS = int(REFERENCE_TIME.timestamp())
_WINDOW_SECONDS = 60 * 86_400
_ACCOUNTS_SINCE_TS = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())

# `.invalid` never resolves (RFC 2606), so a browser that tries to load a cover stays offline.
_IMAGE_CDN = "https://p16-sign.sandbox-tiktokcdn.invalid"
_VIDEO_CDN = "https://v16-webapp.sandbox-tiktokcdn.invalid"

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

_FIRST_NAMES = (
    "Mia",
    "Jonah",
    "Priya",
    "Lukas",
    "Amara",
    "Mateo",
    "Sofia",
    "Kenji",
    "Chloé",
    "Oluwaseun",
    "Zoë",
    "Björn",
    "Ana",
    "Tariq",
    "Freya",
    "Diego",
    "Hannah",
    "Ravi",
    "Inès",
    "Marcus",
    "Leila",
    "Tomás",
    "Nadia",
    "Elliot",
)
_LAST_NAMES = (
    "Patel",
    "Müller",
    "Okafor",
    "García",
    "Tanaka",
    "Dubois",
    "Kowalski",
    "Nguyen",
    "O'Brien",
    "Rossi",
    "Haddad",
    "Johansson",
    "Fernández",
    "Schmidt",
    "Mensah",
    "Park",
    "Costa",
    "Novak",
    "Ali",
    "Lindqvist",
)

# Country -> (language, phone formatters). Numbers use ranges reserved for fiction/drama
# (US 555-01xx, UK 020 7946 0xxx and 07700 900xxx) or obviously sample-like digits.
_PhoneFmt = Callable[[random.Random], str]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


_COUNTRIES: dict[str, tuple[str, tuple[_PhoneFmt, ...]]] = {
    "US": (
        "en",
        (
            lambda r: f"({r.choice(['415', '212', '312', '646'])}) 555-01{_digits(r, 2)}",
            lambda r: f"+1 {r.choice(['415', '213', '917'])}-555-01{_digits(r, 2)}",
            lambda r: f"{r.choice(['310', '512', '206'])}.555.01{_digits(r, 2)}",
        ),
    ),
    "GB": (
        "en",
        (
            lambda r: f"+44 20 7946 0{_digits(r, 3)}",
            lambda r: f"+44 7700 900{_digits(r, 3)}",
            lambda r: f"07700 900{_digits(r, 3)}",
        ),
    ),
    "DE": (
        "de",
        (
            lambda r: f"+49 30 {_digits(r, 6)}",
            lambda r: f"+49 (0)30 {_digits(r, 7)}",
            lambda r: f"+49 151 {_digits(r, 8)}",
        ),
    ),
    "FR": (
        "fr",
        (
            lambda r: "+33 6 " + " ".join(_digits(r, 2) for _ in range(4)),
            lambda r: "+33 (0)1 " + " ".join(_digits(r, 2) for _ in range(4)),
        ),
    ),
    "ES": ("es", (lambda r: f"+34 6{_digits(r, 2)} {_digits(r, 3)} {_digits(r, 3)}",)),
    "BR": ("pt", (lambda r: f"+55 11 9{_digits(r, 4)}-{_digits(r, 4)}",)),
    "AU": (
        "en",
        (
            lambda r: f"+61 2 {_digits(r, 4)} {_digits(r, 4)}",
            lambda r: f"+61 4{_digits(r, 2)} {_digits(r, 3)} {_digits(r, 3)}",
        ),
    ),
    "NG": ("en", (lambda r: f"+234 803 {_digits(r, 3)} {_digits(r, 4)}",)),
    "IN": ("en", (lambda r: f"+91 98{_digits(r, 3)} {_digits(r, 5)}",)),
}
_COUNTRY_CODES = tuple(_COUNTRIES)

_EMAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.co.uk", "icloud.com", "gmx.de")


@dataclass(frozen=True)
class _Topic:
    bio_lines: tuple[str, ...]
    sentences: tuple[str, ...]
    tags: tuple[str, ...]
    labels: tuple[str, ...]


_TOPICS: dict[str, _Topic] = {
    "fitness": _Topic(
        ("Strength coach ✦ home workouts", "Certified PT | 20-min workouts", "Lifting, running, recovering"),
        (
            "Leg day that actually fits in 20 minutes",
            "Stop doing crunches like this",
            "Progress check: {n} weeks of consistent training ✅",
            "My warm-up before every heavy squat session",
            "Honestly skipped the gym all week and I feel terrible",
            "The only 3 stretches you need after running",
            "Form check on the deadlift, be honest",
            "Day {n} of the push-up challenge",
        ),
        ("fitness", "gymtok", "workout", "homeworkout"),
        ("Sports", "Fitness", "Health & Fitness"),
    ),
    "cooking": _Topic(
        ("Home cook sharing 20-minute dinners", "Recipes my nonna would approve", "Feeding 4 on a budget"),
        (
            "15-minute garlic butter noodles that taste like takeout",
            "My grandma's lentil soup, finally written down",
            "Meal prep for the week under $30",
            "This sourdough took me {n} tries and it was worth it ✨",
            "Burnt the caramel again, what am I doing wrong",
            "One-pan lemon chicken for busy weeknights",
            "The crispiest roast potatoes, no deep fryer",
        ),
        ("recipe", "foodtok", "easyrecipe", "mealprep"),
        ("Food & Drink", "Cooking", "Recipes"),
    ),
    "marketing": _Topic(
        (
            "Helping founders grow on a budget",
            "B2B marketer ✦ SaaS growth",
            "Marketing that doesn't feel salesy",
        ),
        (
            "Your landing page has 5 seconds, here is how to use them",
            "Pricing lesson we learned the hard way",
            "We grew to {n}k users without paid ads, here is the playbook",
            "Free trials are killing your conversion rate",
            "Cold emails that actually get replies ☕",
            "The worst marketing advice I ever got",
        ),
        ("marketing", "saas", "startup", "entrepreneur"),
        ("Business & Finance", "Education"),
    ),
    "travel": _Topic(
        ("Slow travel on a budget", "{n} countries and counting", "Hidden gems, no tourist traps"),
        (
            "Hidden beach you won't find on Google Maps",
            "How I flew to Lisbon for {n} euros",
            "Rainy day in the old town and honestly it was perfect ☀",
            "Missed my train and ended up in the best village ever",
            "Packing list for two weeks with a carry-on",
            "This hostel was a nightmare, avoid it",
        ),
        ("travel", "traveltok", "budgettravel", "hiddengems"),
        ("Travel", "Culture & Education & Technology"),
    ),
    "books": _Topic(
        (
            "Reading 100 books this year",
            "Fantasy, romance & everything in between",
            "Book reviews, no spoilers",
        ),
        (
            "Books that ruined me emotionally",
            "My {n} favourite fantasy series ranked",
            "This ending made me throw the book across the room",
            "Cosy autumn reads for rainy evenings ☕",
            "Hot take: the movie was better",
            "Monthly wrap-up: {n} books, one five-star",
        ),
        ("booktok", "bookrecommendations", "reading", "fantasybooks"),
        ("Books", "Entertainment"),
    ),
    "tech": _Topic(
        (
            "Software engineer explaining tech simply",
            "Backend dev ✦ coffee ✦ side projects",
            "Tech, but human",
        ),
        (
            "Explaining APIs like you're five",
            "The bug that took me {n} hours to fix",
            "Why your laptop is slow and how to fix it",
            "My desk setup tour ✨",
            "Interview question I always ask juniors",
            "This AI tool saved me a whole afternoon",
        ),
        ("techtok", "coding", "programming", "ai"),
        ("Science & Technology", "Education"),
    ),
    "pets": _Topic(
        (
            "Two rescue dogs and one dramatic cat",
            "Pet trainer | positive reinforcement",
            "Adopt don't shop ❤",
        ),
        (
            "She heard the treat bag from three rooms away",
            "Teaching a recall in {n} days",
            "Vet visit day and he is NOT happy",
            "Rescue update: look at him now ❤",
            "The zoomies at 3am are unacceptable",
        ),
        ("dogsoftiktok", "catsoftiktok", "pets", "puppy"),
        ("Animals", "Pets"),
    ),
    "fashion": _Topic(
        ("Thrifted outfits under $50", "Stylist ✦ capsule wardrobes", "Outfit ideas for real bodies"),
        (
            "Styling one blazer {n} ways",
            "Thrift haul: everything under ten dollars",
            "Capsule wardrobe for autumn ✨",
            "This trend needs to go, sorry",
            "Get ready with me for a wedding",
        ),
        ("ootd", "fashion", "thrift", "style"),
        ("Fashion", "Beauty & Style"),
    ),
}
_TOPIC_NAMES = tuple(_TOPICS)

# Non-English captions so language detection has work to do.
_LOCAL_SENTENCES: dict[str, tuple[str, ...]] = {
    "de": (
        "Heute zeige ich euch meine Morgenroutine",
        "Wer kennt das auch?",
        "Das hat meinen Alltag verändert, ehrlich",
        "Teil {n} der Serie, schreibt mir eure Fragen",
        "Kleiner Tipp für eure Woche",
    ),
    "fr": (
        "Je vous montre ma routine du matin",
        "Qui d'autre fait ça ?",
        "Partie {n} : vos questions en commentaire",
        "Petit conseil pour la semaine",
        "J'ai testé pour vous et franchement non",
    ),
    "es": (
        "Mi rutina de la mañana completa",
        "¿Quién más hace esto?",
        "Parte {n}: respondo vuestras preguntas",
        "Un consejo rápido para tu semana",
        "Lo probé por vosotros",
    ),
    "pt": (
        "Minha rotina da manhã completa",
        "Quem mais faz isso?",
        "Parte {n}: respondendo vocês",
        "Dica rápida pra sua semana",
        "Testei pra vocês",
    ),
}

# Cross-topic tags: the scrape targets. Every post carries at least one, so each gets many posts.
_TRACKED_TAG_POOL = (
    "smallbusiness",
    "learnontiktok",
    "dayinmylife",
    "productivity",
    "storytime",
    "lifehacks",
    "motivation",
    "behindthescenes",
    "weekendvibes",
    "tips",
)
_GENERIC_TAGS = ("fyp", "foryou", "foryoupage", "viral", "trending")

_LICENSED_TRACKS = (
    ("Golden Hour (sped up)", "Lumen Drift"),
    ("Midnight Static", "The Paper Kites Collective"),
    ("Slow Motion Summer", "Harbor Lights"),
    ("Neon Rain", "Velvet Engine"),
    ("Coffee Shop Loops", "Lo-Fi Atelier"),
    ("Run It Back", "Static Bloom"),
    ("Paper Planes (remix)", "Northbound Echo"),
    ("Soft Focus", "Quiet Arcade"),
)
_ORIGINAL_SOUND_TITLE = {
    "de": "Originalton",
    "fr": "son original",
    "pt": "som original",
    "es": "sonido original",
}

_TRAILING_EMOJI = ("🔥", "💪", "🙌", "😂", "🥹", "📚", "✈️")
_BIO_EMAIL_LEADS = ("📩", "business:", "collabs ✦", "Contact:", "✉")


@dataclass(frozen=True)
class SandboxProfile:
    """One account. ``user_info()`` is exactly ``userInfo`` as the profile page serves it."""

    id: str
    unique_id: str
    nickname: str
    sec_uid: str
    signature: str
    verified: bool
    create_time: int
    country: str
    language: str
    topic: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    bio_mentions: tuple[str, ...]
    bio_link: str | None
    follower_count: int
    following_count: int
    heart_count: int
    digg_count: int
    friend_count: int
    post_ids: tuple[str, ...]  # newest first, the order /api/post/item_list/ pages through

    @property
    def video_count(self) -> int:
        return len(self.post_ids)

    def user_struct(self) -> dict[str, Any]:
        avatar = f"{_IMAGE_CDN}/tos-avt-0068/{self.id}~tplv-tiktokx-cropcenter"
        user: dict[str, Any] = {
            "id": self.id,
            "shortId": "",
            "uniqueId": self.unique_id,
            "nickname": self.nickname,
            "avatarLarger": f"{avatar}:1080:1080.jpeg",
            "avatarMedium": f"{avatar}:720:720.jpeg",
            "avatarThumb": f"{avatar}:100:100.jpeg",
            "signature": self.signature,
            "createTime": self.create_time,  # int for authors, unlike an item's string createTime
            "verified": self.verified,
            "secUid": self.sec_uid,
            "ftc": False,
            "relation": 0,
            "openFavorite": False,
            "commentSetting": 0,
            "duetSetting": 0,
            "stitchSetting": 0,
            "privateAccount": False,
            "secret": False,
            "isADVirtual": False,
            "roomId": "",
            "uniqueIdModifyTime": 0,
            "ttSeller": False,
            "downloadSetting": 0,
            "recommendReason": "",
            "nowInvitationCardUrl": "",
            "nickNameModifyTime": 0,
            "isEmbedBanned": False,
            "canExpPlaylist": False,
            "suggestAccountBind": False,
            "language": self.language,
        }
        if self.bio_link:
            user["bioLink"] = {"link": self.bio_link, "risk": 3}
        return user

    def _counts(self) -> dict[str, int]:
        return {
            "followerCount": self.follower_count,
            "followingCount": self.following_count,
            "heart": self.heart_count,
            "heartCount": self.heart_count,
            "videoCount": self.video_count,
            "diggCount": self.digg_count,
            "friendCount": self.friend_count,
        }

    def stats_struct(self) -> dict[str, int]:
        """Profile ``stats``: follower and like counts rounded as the site displays them."""
        counts = self._counts()
        for key in ("followerCount", "heart", "heartCount"):
            counts[key] = _display_round(counts[key])
        return counts

    def stats_v2_struct(self) -> dict[str, str]:
        """Profile ``statsV2``: the exact counts, as strings."""
        return {key: str(value) for key, value in self._counts().items()}

    def author_stats(self) -> dict[str, int]:
        """``authorStats`` inside an item: exact ints."""
        return self._counts()

    def user_info(self) -> dict[str, Any]:
        return {
            "user": self.user_struct(),
            "stats": self.stats_struct(),
            "statsV2": self.stats_v2_struct(),
            "itemList": [],  # the server-rendered profile holds no videos, like the real site
        }


@dataclass(frozen=True)
class SandboxPost:
    """One post. ``item`` is the served itemStruct; use ``SandboxContent.item_struct`` for a copy."""

    id: str
    author_unique_id: str
    desc: str
    create_time: int
    hashtags: tuple[str, ...]  # lower-case names, caption order
    mentions: tuple[str, ...]  # handles without @, caption order
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    location_created: str
    is_ad: bool
    is_slideshow: bool
    item: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.create_time, tz=UTC)


@dataclass(frozen=True)
class SandboxHashtag:
    """One challenge (hashtag). ``post_ids`` is newest first, the challenge item_list order."""

    id: str
    title: str
    post_ids: tuple[str, ...]
    view_count: int
    tracked: bool  # one of the n_hashtags scrape targets (>= 40 posts each)

    def challenge_struct(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "desc": "",
            "profileLarger": "",
            "profileMedium": "",
            "profileThumb": "",
            "coverLarger": "",
            "coverMedium": "",
            "coverThumb": "",
            "isCommerce": False,
        }

    def challenge_info(self) -> dict[str, Any]:
        return {
            "challenge": self.challenge_struct(),
            "stats": {"videoCount": len(self.post_ids), "viewCount": self.view_count},
            "statsV2": {"videoCount": str(len(self.post_ids)), "viewCount": str(self.view_count)},
        }


@dataclass
class _ExternalUser:
    """Someone mentioned who has no sandbox profile (served only inside textExtra or bios)."""

    unique_id: str
    id: str
    sec_uid: str


@dataclass
class _DraftProfile:
    id: str
    unique_id: str
    nickname: str
    sec_uid: str
    first: str
    last: str
    verified: bool
    create_time: int
    country: str
    language: str
    topic: str
    follower_count: int
    following_count: int
    signature: str = ""
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    bio_mentions: list[str] = field(default_factory=list)
    bio_link: str | None = None


@dataclass
class _DraftPost:
    id: str
    author: _DraftProfile
    create_time: int
    desc: str
    text_extra: list[dict[str, Any]]
    hashtags: list[str]
    mentions: list[str]
    emails: list[str]
    phones: list[str]
    location: str
    language: str
    is_ad: bool
    is_aigc: bool
    is_slideshow: bool
    drop_challenges: bool
    counts: dict[str, int]
    duration: int
    music: dict[str, Any]
    image_count: int


class _CaptionBuilder:
    """Appends caption pieces while recording textExtra offsets for hashtags and mentions."""

    def __init__(self) -> None:
        self.text = ""
        self.extras: list[dict[str, Any]] = []

    def add(self, piece: str, *, space: bool = True) -> None:
        if space and self.text and not self.text.endswith((" ", "\n")):
            self.text += " "
        self.text += piece

    def hashtag(self, name: str, written: str, challenge_id: str) -> None:
        self.add("")
        start = len(self.text)
        self.text += f"#{written}"
        self.extras.append(
            {
                "awemeId": "",
                "start": start,
                "end": len(self.text),
                "hashtagId": challenge_id,
                "hashtagName": name,
                "type": 1,
                "subType": 0,
                "isCommerce": False,
            }
        )

    def mention(self, handle: str, user_id: str, sec_uid: str) -> None:
        start = len(self.text)
        self.text += f"@{handle}"
        self.extras.append(
            {
                "awemeId": "",
                "start": start,
                "end": len(self.text),
                "hashtagName": "",
                "type": 0,
                "subType": 0,
                "userId": user_id,
                "userUniqueId": handle,
                "secUid": sec_uid,
                "isCommerce": False,
            }
        )


def _ascii_fold(text: str) -> str:
    """'Chloé O'Brien' -> 'chloeobrien': usable in handles and email local parts."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _display_round(value: int) -> int:
    """Round like the profile header shows counts (68259 -> 68300 '68.3K', 1234567 -> 1200000)."""
    if value < 10_000:
        return value
    if value < 1_000_000:
        return round(value, -2)
    return round(value, -5)


class SandboxContent:
    """Profiles, posts and hashtags the sandbox site serves, plus the personal-data ground truth."""

    def __init__(
        self,
        *,
        seed: int,
        profiles: list[SandboxProfile],
        hashtags: list[SandboxHashtag],
        challenges: list[SandboxHashtag],
        posts: list[SandboxPost],
        pii: dict[str, set[str]],
    ) -> None:
        self.seed = seed
        #: The accounts, in generation order.
        self.profiles: list[SandboxProfile] = profiles
        #: The tracked hashtags (scrape targets), each with >= 40 posts when there are enough posts.
        self.hashtags: list[SandboxHashtag] = hashtags
        #: Every hashtag that appears in a caption (tracked, topical and generic); all have pages.
        self.challenges: list[SandboxHashtag] = challenges
        self.posts_by_id: dict[str, SandboxPost] = {post.id: post for post in posts}
        self.profiles_by_handle: dict[str, SandboxProfile] = {p.unique_id.lower(): p for p in profiles}
        self.profiles_by_sec_uid: dict[str, SandboxProfile] = {p.sec_uid: p for p in profiles}
        self.challenges_by_title: dict[str, SandboxHashtag] = {c.title.lower(): c for c in challenges}
        self.challenges_by_id: dict[str, SandboxHashtag] = {c.id: c for c in challenges}
        self._pii = {kind: frozenset(values) for kind, values in pii.items()}

    # -- ground truth ------------------------------------------------------------------------
    def pii_values(self) -> set[str]:
        """Every raw email, phone (as written), handle (no @), nickname and secUid served."""
        return set().union(*self._pii.values())

    def pii_by_kind(self) -> dict[str, set[str]]:
        """The same values split into ``emails``, ``phones``, ``handles``, ``nicknames``, ``sec_uids``."""
        return {kind: set(values) for kind, values in self._pii.items()}

    def item_struct(self, post_id: str) -> dict[str, Any]:
        """The exact itemStruct JSON the site serves for ``post_id`` (a deep copy)."""
        return copy.deepcopy(self.posts_by_id[post_id].item)

    def profile(self, handle: str) -> SandboxProfile | None:
        return self.profiles_by_handle.get(handle.lstrip("@").lower())

    def challenge(self, name: str) -> SandboxHashtag | None:
        return self.challenges_by_title.get(name.lstrip("#").lower())

    def post_ids_for(self, kind: str, value: str, max_posts: int) -> list[str]:
        """Ground truth for one scrape target: the post ids a complete fetch returns, newest
        first, capped at ``max_posts``. ``kind`` is ``profile``, ``hashtag`` or ``video`` (then
        ``value`` is the post id itself)."""
        if kind == "profile":
            profile = self.profile(value)
            return list(profile.post_ids[:max_posts]) if profile else []
        if kind == "hashtag":
            challenge = self.challenge(value)
            return list(challenge.post_ids[:max_posts]) if challenge else []
        return [value]

    def fingerprint(self) -> str:
        """SHA-256 over everything served: equal fingerprints mean identical content."""
        payload = {
            "profiles": [p.user_info() for p in self.profiles],
            "challenges": [[c.challenge_info(), list(c.post_ids)] for c in self.challenges],
            "items": [self.posts_by_id[i].item for i in sorted(self.posts_by_id)],
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    # -- generation --------------------------------------------------------------------------
    @classmethod
    def generate(
        cls, seed: int = 7, n_profiles: int = 6, n_hashtags: int = 4, posts_per_profile: int = 75
    ) -> SandboxContent:
        """Build the content for ``seed``; the same arguments always give identical content."""
        if n_profiles < 1 or posts_per_profile < 1:
            raise ValueError("n_profiles and posts_per_profile must be >= 1")
        if not 1 <= n_hashtags <= len(_TRACKED_TAG_POOL):
            raise ValueError(f"n_hashtags must be between 1 and {len(_TRACKED_TAG_POOL)}")
        return _Generator(seed, n_profiles, n_hashtags, posts_per_profile).build()


class _Generator:
    """One generation run. Only ever iterates lists (never sets) so output is order-stable."""

    def __init__(self, seed: int, n_profiles: int, n_hashtags: int, posts_per_profile: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_profiles = n_profiles
        self.n_hashtags = n_hashtags
        self.posts_per_profile = posts_per_profile
        self.pii: dict[str, set[str]] = {
            "emails": set(),
            "phones": set(),
            "handles": set(),
            "nicknames": set(),
            "sec_uids": set(),
        }
        self.used_handles: set[str] = set()
        self.used_ids: set[str] = set()
        self.challenge_ids: dict[str, str] = {}

    # -- small helpers -----------------------------------------------------------------------
    def _time_id(self, unix_seconds: int) -> str:
        """A 19-digit id whose top bits are the creation time, as TikTok's ids are."""
        while True:
            value = str((unix_seconds << 32) | self.rng.getrandbits(32))
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def _sec_uid(self) -> str:
        return "MS4wLjABAAAA" + "".join(self.rng.choice(_B64URL) for _ in range(64))

    def _challenge_id(self, name: str) -> str:
        if name not in self.challenge_ids:
            taken = set(self.challenge_ids.values())
            while True:
                digits = self.rng.randint(5, 16)  # real ids range from "24217" to "1641406426866690"
                value = str(self.rng.randrange(10 ** (digits - 1), 10**digits))
                if value not in taken:
                    self.challenge_ids[name] = value
                    break
        return self.challenge_ids[name]

    def _handle(self, first: str, last: str, topic: str) -> str:
        f, last_ascii = _ascii_fold(first), _ascii_fold(last)
        shapes = [
            f"{f}.{last_ascii}",
            f"{f}_{last_ascii}{self.rng.randint(1, 99)}",
            f"{f}{topic}",
            f"the.real.{f}",
            f"{f}.{topic}{self.rng.randint(1, 9)}",
            f"{f[:1]}{last_ascii}_{topic}",
        ]
        self.rng.shuffle(shapes)
        for shape in shapes:
            if shape not in self.used_handles:
                self.used_handles.add(shape)
                return shape
        while True:  # every shape taken: add digits until unique
            shape = f"{f}{last_ascii}{self.rng.randint(100, 9999)}"
            if shape not in self.used_handles:
                self.used_handles.add(shape)
                return shape

    def _email(self, profile: _DraftProfile) -> str:
        f, last = _ascii_fold(profile.first), _ascii_fold(profile.last)
        shapes = [
            f"{f}.{last}@{self.rng.choice(_EMAIL_DOMAINS)}",
            f"{profile.unique_id}@{self.rng.choice(_EMAIL_DOMAINS)}",
            f"bookings@{last}{profile.topic}.co",
            f"hello+tiktok@{f}{last}.com",
            f"{f}{self.rng.randint(10, 99)}@{self.rng.choice(_EMAIL_DOMAINS)}",
            f"mgmt.{last}@talentbridge.agency",
        ]
        email = self.rng.choice(shapes).replace("_", ".").replace("..", ".")
        self.pii["emails"].add(email)
        return email

    def _phone(self, country: str) -> str:
        phone = self.rng.choice(_COUNTRIES[country][1])(self.rng)
        self.pii["phones"].add(phone)
        return phone

    # -- build -------------------------------------------------------------------------------
    def build(self) -> SandboxContent:
        profiles = self._profiles()
        externals = self._external_users()
        self._bios(profiles, externals)
        tracked = self.rng.sample(_TRACKED_TAG_POOL, self.n_hashtags)
        posts = self._posts(profiles, externals, tracked)

        by_author: dict[str, list[_DraftPost]] = {p.unique_id: [] for p in profiles}
        for post in posts:
            by_author[post.author.unique_id].append(post)
        for items in by_author.values():
            items.sort(key=lambda p: (p.create_time, p.id), reverse=True)

        final_profiles: list[SandboxProfile] = []
        for draft in profiles:
            own = by_author[draft.unique_id]
            likes = sum(p.counts["diggCount"] for p in own)
            final_profiles.append(
                SandboxProfile(
                    id=draft.id,
                    unique_id=draft.unique_id,
                    nickname=draft.nickname,
                    sec_uid=draft.sec_uid,
                    signature=draft.signature,
                    verified=draft.verified,
                    create_time=draft.create_time,
                    country=draft.country,
                    language=draft.language,
                    topic=draft.topic,
                    emails=tuple(draft.emails),
                    phones=tuple(draft.phones),
                    bio_mentions=tuple(draft.bio_mentions),
                    bio_link=draft.bio_link,
                    follower_count=draft.follower_count,
                    following_count=draft.following_count,
                    # older videos (not served) contributed likes too
                    heart_count=likes + self.rng.randint(0, draft.follower_count * 3),
                    digg_count=self.rng.randint(0, 5_000),
                    friend_count=self.rng.randint(0, min(draft.following_count, 300)),
                    post_ids=tuple(p.id for p in own),
                )
            )
        profile_by_handle = {p.unique_id: p for p in final_profiles}

        final_posts = [self._finalise_post(d, profile_by_handle[d.author.unique_id]) for d in posts]
        hashtags, challenges = self._challenges(final_posts, tracked)
        return SandboxContent(
            seed=self.seed,
            profiles=final_profiles,
            hashtags=hashtags,
            challenges=challenges,
            posts=final_posts,
            pii=self.pii,
        )

    def _profiles(self) -> list[_DraftProfile]:
        rng = self.rng
        firsts = rng.sample(_FIRST_NAMES, min(self.n_profiles, len(_FIRST_NAMES)))
        topics = rng.sample(_TOPIC_NAMES, len(_TOPIC_NAMES))
        drafts = []
        for index in range(self.n_profiles):
            first = firsts[index % len(firsts)]
            last = rng.choice(_LAST_NAMES)
            topic = topics[index % len(topics)]
            country = rng.choice(_COUNTRY_CODES)
            nickname = f"{first} {last}"
            if rng.random() < 0.25:
                nickname += rng.choice([" ✨", " ☕", " | " + topic.title(), " ✦"])
            elif rng.random() < 0.15:
                nickname = first  # some people only show a first name
            created = rng.randint(_ACCOUNTS_SINCE_TS, _REFERENCE_TS - 400 * 86_400)
            handle = self._handle(first, last, topic)
            draft = _DraftProfile(
                id=self._time_id(created),
                unique_id=handle,
                nickname=nickname,
                sec_uid=self._sec_uid(),
                first=first,
                last=last,
                verified=rng.random() < 0.2,
                create_time=created,
                country=country,
                language=_COUNTRIES[country][0],
                topic=topic,
                follower_count=int(rng.lognormvariate(10.5, 1.6)) + 50,
                following_count=rng.randint(20, 2_500),
            )
            self.pii["handles"].add(handle)
            self.pii["nicknames"].add(nickname)
            self.pii["sec_uids"].add(draft.sec_uid)
            drafts.append(draft)
        return drafts

    def _external_users(self) -> list[_ExternalUser]:
        users = []
        for _ in range(8):
            first, last = self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)
            handle = self._handle(first, last, self.rng.choice(_TOPIC_NAMES))
            created = self.rng.randint(1_560_000_000, _REFERENCE_TS - 100 * 86_400)
            users.append(_ExternalUser(handle, self._time_id(created), self._sec_uid()))
        return users

    def _bios(self, profiles: list[_DraftProfile], externals: list[_ExternalUser]) -> None:
        rng = self.rng
        # Cycle through every kind so even a handful of profiles covers emails, phones and @handles.
        kinds = ["email", "phone", "mention", "email+phone", "plain", "email+mention"]
        rng.shuffle(kinds)
        for index, profile in enumerate(profiles):
            kind = kinds[index % len(kinds)]
            line = rng.choice(_TOPICS[profile.topic].bio_lines).replace("{n}", str(rng.randint(12, 60)))
            parts = [line]
            if "email" in kind:
                email = self._email(profile)
                profile.emails.append(email)
                parts.append(f"{rng.choice(_BIO_EMAIL_LEADS)} {email}")
            if "phone" in kind:
                phone = self._phone(profile.country)
                profile.phones.append(phone)
                parts.append(f"{rng.choice(['WhatsApp', 'Call/text', '☎', 'Tel.'])} {phone}")
            if "mention" in kind:
                others = [p.unique_id for p in profiles if p is not profile]
                others += [e.unique_id for e in externals]
                other = rng.choice(others)
                profile.bio_mentions.append(other)
                self.pii["handles"].add(other)
                parts.append(rng.choice(["also @{h}", "2nd account @{h}", "💞 @{h}"]).format(h=other))
            separator = rng.choice(["\n", " | ", "\n"])
            profile.signature = separator.join(parts)
            if rng.random() < 0.4:
                profile.bio_link = f"linktr.ee/{profile.unique_id}"

    def _posts(
        self, profiles: list[_DraftProfile], externals: list[_ExternalUser], tracked: list[str]
    ) -> list[_DraftPost]:
        rng = self.rng
        total = len(profiles) * self.posts_per_profile
        # Tag plan first: one tracked tag round-robin per post plus random extras, then top up so
        # each tracked tag spans several item_list pages (>= 40 posts when there are enough).
        plan: list[list[str]] = []
        for index in range(total):
            tags = [tracked[index % len(tracked)]]
            tags += [t for t in tracked if t not in tags and rng.random() < 0.15]
            plan.append(tags)
        minimum = min(40, total)
        for tag in tracked:
            lacking = [i for i, tags in enumerate(plan) if tag not in tags]
            rng.shuffle(lacking)
            while sum(tag in tags for tags in plan) < minimum and lacking:
                plan[lacking.pop()].append(tag)

        posts = []
        index = 0
        for profile in profiles:
            for _ in range(self.posts_per_profile):
                posts.append(self._post(profile, profiles, externals, plan[index]))
                index += 1
        return posts

    def _post(
        self,
        profile: _DraftProfile,
        profiles: list[_DraftProfile],
        externals: list[_ExternalUser],
        tracked_tags: list[str],
    ) -> _DraftPost:
        rng = self.rng
        topic = _TOPICS[profile.topic]
        created = rng.randint(_REFERENCE_TS - _WINDOW_SECONDS + 1, _REFERENCE_TS - 1)
        post_id = self._time_id(created)

        language = profile.language
        if language in _LOCAL_SENTENCES and rng.random() < 0.6:
            sentence = rng.choice(_LOCAL_SENTENCES[language])
        else:
            sentence, language = rng.choice(topic.sentences), "en"
        sentence = sentence.replace("{n}", str(rng.randint(2, 40)))

        caption = _CaptionBuilder()
        if rng.random() < 0.08:
            caption.add(rng.choice(["Part {n}:", "Day {n}:", "POV:"]).replace("{n}", str(rng.randint(1, 30))))
        caption.add(sentence)

        mentions: list[str] = []
        roll = rng.random()
        if roll < 0.25:
            if roll < 0.2 and len(profiles) > 1:
                other = rng.choice([p for p in profiles if p is not profile])
                target = (other.unique_id, other.id, other.sec_uid)
            else:
                ext = rng.choice(externals)
                target = (ext.unique_id, ext.id, ext.sec_uid)
                self.pii["sec_uids"].add(ext.sec_uid)
            lead, tail = rng.choice([("with", ""), ("cc", ""), ("shoutout to", "for the idea"), ("ft.", "")])
            caption.add(lead)
            caption.add("")
            caption.mention(*target)
            if tail:
                caption.add(tail)
            mentions.append(target[0])
            self.pii["handles"].add(target[0])

        emails: list[str] = []
        phones: list[str] = []
        if rng.random() < 0.09:
            email = profile.emails[0] if profile.emails and rng.random() < 0.6 else self._email(profile)
            caption.add(rng.choice(["Business inquiries:", "Collabs →", "Questions? Email", "DM or mail"]))
            caption.add(email)
            emails.append(email)
        if rng.random() < 0.06:
            reuse = profile.phones and rng.random() < 0.6
            phone = profile.phones[0] if reuse else self._phone(profile.country)
            caption.add(rng.choice(["Orders via WhatsApp", "Book a session:", "Call", "Text me on"]))
            caption.add(phone)
            phones.append(phone)

        tags = list(tracked_tags)
        tags += rng.sample(topic.tags, rng.randint(1, 3))
        tags += rng.sample(_GENERIC_TAGS, rng.choice([0, 0, 1, 2]))
        rng.shuffle(tags)
        for tag in tags:
            written = tag.capitalize() if rng.random() < 0.08 else tag
            caption.hashtag(tag, written, self._challenge_id(tag))
        if rng.random() < 0.2:
            # Non-BMP emoji only after the last entity keeps code-point and UTF-16 offsets equal.
            caption.add(rng.choice(_TRAILING_EMOJI))

        is_slideshow = rng.random() < 0.1
        duration = rng.randint(6, 180) if not is_slideshow else rng.randint(10, 30)
        plays = max(50, int(profile.follower_count * rng.uniform(0.05, 3.0)) + rng.randint(0, 500))
        diggs = int(plays * rng.uniform(0.01, 0.15))
        counts = {
            "playCount": plays,
            "diggCount": diggs,
            "commentCount": int(diggs * rng.uniform(0.005, 0.06)),
            "shareCount": int(diggs * rng.uniform(0.005, 0.1)),
            "collectCount": int(diggs * rng.uniform(0.01, 0.2)),
            "repostCount": int(diggs * rng.uniform(0.0, 0.01)),
        }
        if rng.random() < 0.55:
            title = _ORIGINAL_SOUND_TITLE.get(profile.language)
            music = {
                "id": self._time_id(created),
                "title": title or f"original sound - {profile.nickname}",
                "authorName": profile.nickname,
                "original": True,
                "duration": duration,
            }
        else:
            track_index = rng.randrange(len(_LICENSED_TRACKS))
            track_title, artist = _LICENSED_TRACKS[track_index]
            music = {
                "id": str(7_000_000_000_000_000_000 + track_index * 7_919_113 + 123_456_789),
                "title": track_title,
                "authorName": artist,
                "original": False,
                "duration": 30 + (track_index * 7) % 31,
            }
        location = profile.country if rng.random() < 0.85 else rng.choice(_COUNTRY_CODES)
        return _DraftPost(
            id=post_id,
            author=profile,
            create_time=created,
            desc=caption.text,
            text_extra=caption.extras,
            hashtags=tags,
            mentions=mentions,
            emails=emails,
            phones=phones,
            location=location,
            language=language,
            is_ad=rng.random() < 0.03,
            is_aigc=rng.random() < 0.05,
            is_slideshow=is_slideshow,
            drop_challenges=rng.random() < 0.05,  # real quirk: challenges [] though the caption has tags
            counts=counts,
            duration=duration,
            music=music,
            image_count=rng.randint(2, 8) if is_slideshow else 0,
        )

    def _finalise_post(self, draft: _DraftPost, author: SandboxProfile) -> SandboxPost:
        item = _item_struct(draft, author, self.challenge_ids)
        return SandboxPost(
            id=draft.id,
            author_unique_id=author.unique_id,
            desc=draft.desc,
            create_time=draft.create_time,
            hashtags=tuple(draft.hashtags),
            mentions=tuple(draft.mentions),
            emails=tuple(draft.emails),
            phones=tuple(draft.phones),
            location_created=draft.location,
            is_ad=draft.is_ad,
            is_slideshow=draft.is_slideshow,
            item=item,
        )

    def _challenges(
        self, posts: list[SandboxPost], tracked: list[str]
    ) -> tuple[list[SandboxHashtag], list[SandboxHashtag]]:
        members: dict[str, list[SandboxPost]] = {}
        for post in posts:
            for tag in post.hashtags:
                members.setdefault(tag, []).append(post)
        challenges = []
        for title in sorted(members):
            newest_first = sorted(members[title], key=lambda p: (p.create_time, p.id), reverse=True)
            challenges.append(
                SandboxHashtag(
                    id=self.challenge_ids[title],
                    title=title,
                    post_ids=tuple(p.id for p in newest_first),
                    view_count=sum(p.item["stats"]["playCount"] for p in newest_first),
                    tracked=title in tracked,
                )
            )
        by_title = {c.title: c for c in challenges}
        return [by_title[t] for t in tracked], challenges


def _item_struct(draft: _DraftPost, author: SandboxProfile, challenge_ids: dict[str, str]) -> dict[str, Any]:
    """The itemStruct as served, mirroring the captured pages field for field where it matters."""
    post_id = draft.id
    counts = draft.counts
    image_base = f"{_IMAGE_CDN}/tos-maliva-p-0068/{post_id}"
    video: dict[str, Any] = {
        "id": post_id,
        "height": 1024,
        "width": 576,
        "duration": draft.duration,
        "ratio": "540p",
        "cover": f"{image_base}~tplv-tiktokx-origin.image",
        "originCover": f"{image_base}~tplv-tiktokx-origin-cover.image",
        "dynamicCover": f"{image_base}~tplv-tiktokx-dynamic.image",
        "playAddr": f"{_VIDEO_CDN}/video/tos/{post_id}/?mime_type=video_mp4",
        "downloadAddr": f"{_VIDEO_CDN}/video/tos/{post_id}/?mime_type=video_mp4&dl=1",
        "shareCover": [""],
        "reflowCover": "",
        "bitrate": 600_000 + int(post_id[-5:]),
        "encodedType": "normal",
        "format": "mp4",
        "videoQuality": "normal",
        "encodeUserTag": "",
        "codecType": "h264",
        "definition": "540p",
        "videoID": f"v0902{post_id[-12:]}",
    }
    music_base = f"{_IMAGE_CDN}/tos-maliva-avt-0068/{author.id}~tplv-tiktokx-cropcenter"
    music = {
        **draft.music,
        "playUrl": f"{_VIDEO_CDN}/music/{draft.music['id']}.mp3",
        "coverLarge": f"{music_base}:1080:1080.jpeg",
        "coverMedium": f"{music_base}:720:720.jpeg",
        "coverThumb": f"{music_base}:100:100.jpeg",
        "private": False,
        "isCopyrighted": not draft.music["original"],
        "collected": False,
    }
    author_user = author.user_struct()
    author_struct = {
        k: author_user[k]
        for k in (
            "id",
            "shortId",
            "uniqueId",
            "nickname",
            "avatarLarger",
            "avatarMedium",
            "avatarThumb",
            "signature",
            "createTime",
            "verified",
            "secUid",
            "ftc",
            "relation",
            "openFavorite",
            "commentSetting",
            "duetSetting",
            "stitchSetting",
            "privateAccount",
            "secret",
            "isADVirtual",
            "roomId",
            "uniqueIdModifyTime",
            "ttSeller",
            "downloadSetting",
            "recommendReason",
            "nowInvitationCardUrl",
            "nickNameModifyTime",
            "isEmbedBanned",
            "canExpPlaylist",
            "suggestAccountBind",
        )
    }
    challenges = (
        []
        if draft.drop_challenges
        else [
            {
                "id": challenge_ids[tag],
                "title": tag,
                "desc": "",
                "profileLarger": "",
                "profileMedium": "",
                "profileThumb": "",
                "coverLarger": "",
                "coverMedium": "",
                "coverThumb": "",
            }
            for tag in dict.fromkeys(draft.hashtags)
        ]
    )
    author_stats = author.author_stats()
    item: dict[str, Any] = {
        "id": post_id,
        "desc": draft.desc,
        "createTime": str(draft.create_time),  # a string in items, an int for authors
        "scheduleTime": 0,
        "video": video,
        "author": author_struct,
        "music": music,
        "challenges": challenges,
        "stats": {
            "diggCount": counts["diggCount"],
            "shareCount": counts["shareCount"],
            "commentCount": counts["commentCount"],
            "playCount": counts["playCount"],
            "collectCount": str(counts["collectCount"]),  # the one string in `stats`
        },
        "statsV2": {
            "diggCount": str(counts["diggCount"]),
            "shareCount": str(counts["shareCount"]),
            "commentCount": str(counts["commentCount"]),
            "playCount": str(counts["playCount"]),
            "collectCount": str(counts["collectCount"]),
            "repostCount": str(counts["repostCount"]),
        },
        "warnInfo": [],
        "originalItem": False,
        "officalItem": False,
        "textExtra": copy.deepcopy(draft.text_extra),
        "secret": False,
        "forFriend": False,
        "digged": False,
        "itemCommentStatus": 0,
        "isProhibited": False,
        "takeDown": 0,
        "effectStickers": [],
        "authorStats": author_stats,
        "privateItem": False,
        "duetEnabled": True,
        "stitchEnabled": True,
        "stickersOnItem": [],
        "isAd": draft.is_ad,
        "shareEnabled": True,
        "comments": [],
        "duetDisplay": 0,
        "stitchDisplay": 0,
        "indexEnabled": True,
        "diversificationLabels": list(_TOPICS[author.topic].labels),
        "locationCreated": draft.location,
        "suggestedWords": [],
        "collected": False,
        "channelTags": [],
        "item_control": {"can_repost": True},
        "IsAigc": draft.is_aigc,
        "AIGCDescription": "",
        "ShowAIGC": draft.is_aigc,
        "textLanguage": draft.language,
        "textTranslatable": True,
        "authorStatsV2": {key: str(value) for key, value in author_stats.items()},
        "isReviewing": False,
    }
    if draft.is_slideshow:
        image = {"imageWidth": 1080, "imageHeight": 1440}
        images = [
            {"imageURL": {"urlList": [f"{image_base}/photo-{n}~tplv-photomode-image.jpeg"]}, **image}
            for n in range(draft.image_count)
        ]
        item["imagePost"] = {"images": images, "cover": images[0], "shareCover": images[0], "title": ""}
        video.update({"width": 1080, "height": 1440, "playAddr": "", "downloadAddr": ""})
    return item
