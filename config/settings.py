"""Typed settings: the entity registry, the question catalogue, rules, windows and sinks.

These models only describe shapes and local rules; :mod:`boucle.config.loader` loads a file, lets
``BOUCLE_*`` environment variables override it, checks cross-references and reports the path of a
bad key.

>>> Settings(windows={"lengths": ["1h", "1d"]}).windows.lengths[1]
datetime.timedelta(days=1)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from boucle.config.detector_parameters import (
    ClockParameters,
    DeclineParameters,
    ExpectationParameters,
    PeerParameters,
    RiverDetector,
    TrendParameters,
)
from boucle.config.durations import (
    DURATION_EXAMPLES,
    Duration,
    PositiveDuration,
    parse_duration,
)
from boucle.config.locales import is_language_code
from boucle.config.notify import Language, Notify, TimeZone
from boucle.config.times import country_zone

__all__ = [
    "Attribute",
    "AttributeAlerts",
    "Cases",
    "Condition",
    "DeclineParameters",
    "ExpectationParameters",
    "HotAlerts",
    "HotRule",
    "Input",
    "Kafka",
    "KafkaTimeouts",
    "Metric",
    "PeerParameters",
    "RateCap",
    "Region",
    "Registry",
    "RiverDetector",
    "Settings",
    "Site",
    "Themes",
    "TrendParameters",
    "parse_duration",
    "DURATION_EXAMPLES",
    "Phrases",
]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
CHANNELS = ("store", "web", "app", "email", "sms", "call_center", "ivr")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Strict):
    """A region of the registry; ``manager`` owns its regional incidents, ``team`` (default: the id) receives them."""

    id: str
    name: str = ""
    manager: str = ""
    team: str = ""
    timezone: TimeZone = ""  # IANA name: its sites' local days (unless theirs), quiet hours and digests; empty: notify.timezone


class Site(_Strict):
    """One entry of the entity registry: where a site sits and who owns its alerts."""

    id: str
    name: str = ""
    region: str
    country: str = ""
    kind: str = "store"
    language: Language = "fr"  # any tag; messages in fr, en, de, es, it, nl (else English)
    owner: str = ""
    team: str = ""
    manager: str = ""
    # Contacts for boucle notify (optional): the site's own mailbox, its team's, its time zone (else the region's).
    email: str = ""
    team_email: str = ""
    timezone: TimeZone = ""  # IANA zone of its local days (Europe/Paris, America/New_York); empty: the region's, else the country's, else UTC


class Registry(_Strict):
    """Sites and regions from CSV files (paths relative to the config file), merged with the
    ``[[sites]]`` and ``[[regions]]`` of the TOML; ``site_columns`` / ``region_columns`` map a
    field to the CSV header that holds it (``id = "Store code"``). See :mod:`boucle.config.registry`."""

    sites_csv: str | None = None
    regions_csv: str | None = None
    site_columns: dict[str, str] = {}
    region_columns: dict[str, str] = {}
    delimiter: str = Field(",", min_length=1, max_length=1)  # ";" for many spreadsheet exports


def _cue(cue: str) -> str:
    """A complaint cue: a regular expression, matched case-insensitively on whole words."""
    try:
        re.compile(cue)
    except re.error as exc:
        raise ValueError(f"{cue!r} is not a valid regular expression: {exc}") from None
    return cue


def _phrase_language(code: str) -> str:
    if not is_language_code(code):
        raise ValueError(f"{code!r} is not a language code (a tag such as 'de', 'de-CH' or 'sv')")
    return code


# Complaint phrases per language: {fr = ["sale", 'crasseu\w+'], de = ["schmutzig"]}.
Phrases = dict[Annotated[str, AfterValidator(_phrase_language)], list[Annotated[str, AfterValidator(_cue)]]]


class Metric(_Strict):
    """A rated question: a headline score (NPS, CSAT, CES) or an attribute.

    ``bottom_max`` ends the bottom box (detractors for NPS), ``top_min`` starts the top box
    (promoters for NPS, satisfied for CSAT). Higher is better on every scale.
    """

    min: int
    max: int
    bottom_max: int
    top_min: int
    label_fr: str = ""
    label_en: str = ""
    labels: dict[Language, str] = {}  # the label in other languages: {de = "Wartezeit", es = "Espera"}

    def labels_by_language(self, name: str) -> dict[str, str]:
        """The question's label per language (``name`` where none is given); look it up with
        :func:`boucle.config.locales.label_in`."""
        return {"fr": self.label_fr or name, "en": self.label_en or name, **self.labels}

    @model_validator(mode="after")
    def _ordered(self) -> "Metric":
        if not self.min <= self.bottom_max < self.top_min <= self.max:
            raise ValueError(
                f"need min <= bottom_max < top_min <= max, got {self.min}, {self.bottom_max},"
                f" {self.top_min}, {self.max}"
            )
        return self


class Attribute(Metric):
    """A question of the catalogue; ``complaints`` are the cues of its comment theme, per language."""

    name: str
    min: int = 1
    max: int = 5
    bottom_max: int = 2
    top_min: int = 4
    complaints: Phrases = {}


def _default_scores() -> dict[str, Metric]:
    return {
        "nps": Metric(min=0, max=10, bottom_max=6, top_min=9, label_fr="NPS", label_en="NPS"),
        "csat": Metric(min=1, max=5, bottom_max=2, top_min=4, label_fr="CSAT", label_en="CSAT"),
        "ces": Metric(min=1, max=7, bottom_max=2, top_min=5, label_fr="Effort", label_en="CES"),
    }


class Condition(_Strict):
    """One test of a hot-alert rule; a rule fires when all its conditions hold.

    Exactly one of: a score/attribute bound (``score`` or ``attribute`` with ``max`` and/or ``min``),
    ``comment_mentions`` (a keyword list of ``hot_alerts.keywords``), ``any_attribute_at_minimum``,
    ``channel_in``.
    """

    score: str | None = None
    attribute: str | None = None
    max: int | None = None
    min: int | None = None
    comment_mentions: str | None = None
    any_attribute_at_minimum: bool | None = None
    channel_in: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Condition":
        kinds = [
            self.score is not None or self.attribute is not None,
            self.comment_mentions is not None,
            bool(self.any_attribute_at_minimum),
            self.channel_in is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a condition needs exactly one of: score/attribute with max/min, comment_mentions,"
                " any_attribute_at_minimum, channel_in"
            )
        if self.score is not None and self.attribute is not None:
            raise ValueError("give either score or attribute, not both")
        if (self.score or self.attribute) and self.max is None and self.min is None:
            raise ValueError("a score/attribute condition needs max and/or min")
        return self


class HotRule(_Strict):
    name: str
    severity: Severity = "medium"
    all: list[Condition] = Field(min_length=1)


class RateCap(_Strict):
    """Fatigue control: at most ``per_site_per_day`` hot alerts are published per site and UTC day of
    event time (0: no cap); the ones beyond it are held and gathered in one ``hot_digest`` alert per
    site and day. Severities in ``exempt`` always go out one by one and do not count. A digest lists
    at most ``digest_items`` of its alerts (all are counted)."""

    per_site_per_day: int = Field(20, ge=0)
    exempt: list[Severity] = ["critical"]
    digest_items: int = Field(50, ge=0, le=1000)


class HotAlerts(_Strict):
    cooldown: Duration = timedelta(hours=24)
    rate_cap: RateCap = RateCap()
    # An alert carries at most this many characters of the comment (then a visible marker): see README.
    max_comment_chars: int = Field(2000, ge=1, le=100_000)
    rules: list[HotRule] = []
    keywords: dict[str, dict[str, list[str]]] = {}


class Input(_Strict):
    """Bounds every input message must meet before it is decoded (else a dead letter, see README).

    ``max_bytes``: a larger message is ``too_large``; ``max_depth``: JSON nested deeper is
    ``too_deep``. ``max_future``/``max_past``: an ``occurred_at`` further from now is
    ``time_out_of_range``; ``max_past`` applies to live sources only (a replay takes any past
    since 1970), and no time is accepted outside what a ClickHouse ``Date`` holds (1970 to 2149-06-06).
    """

    max_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_depth: int = Field(32, ge=4, le=512)
    max_future: PositiveDuration = timedelta(days=730)
    max_past: PositiveDuration = timedelta(days=1826)


class Windows(_Strict):
    lengths: list[PositiveDuration] = Field([timedelta(hours=1), timedelta(days=1)], min_length=1)
    allowed_lateness: Duration = timedelta(hours=2)
    # Live sources only: close a quiet site's windows when the wall clock passes their end.
    close_on_wall_clock: bool = False
    # Each site remembers the event_id of its events this long (event time) to drop duplicates.
    dedup_horizon: PositiveDuration = timedelta(days=1)

    @field_validator("lengths")
    @classmethod
    def _divides_a_day_or_days(cls, lengths: list[timedelta]) -> list[timedelta]:
        day = 86400
        for length in lengths:
            seconds = length.total_seconds()
            if seconds != int(seconds) or (day % seconds and seconds % day):
                raise ValueError(f"window length {length} must divide a day or be whole days")
        shortest = min(lengths, default=timedelta(hours=1))
        for length in lengths:
            if length % shortest:
                raise ValueError(f"window length {length} must be a multiple of the shortest, {shortest}")
        if timedelta(days=1) not in lengths:
            # The daily rollups, the views' day and the report read the 1d windows.
            raise ValueError(f"must include '1d' (the daily rollups need it), got {', '.join(map(str, lengths))}")
        return lengths


class State(_Strict):
    """How the per-site steps (windows and duplicates, hot alerts, comment themes) key their state.

    ``site_shards``: a site's state lives under the key of its shard (crc32 of its id modulo this),
    so a batch becomes at most this many keyed items however many sites it holds: bytewax's cost
    per item is then paid per shard, not per site (thin networks: per event). Each site's state
    stays its own, so the results do not depend on it. More shards than workers spread the work;
    a recovery directory only resumes under the count it was written with.
    """

    site_shards: int = Field(64, ge=1, le=65_536)


class Warehouse(_Strict):
    """Where rows go: embedded chDB at ``path`` unless ``url`` names a ClickHouse server."""

    url: str | None = None
    path: str = "var/boucle.chdb"
    database: str = "boucle"
    user: str = "default"
    password: SecretStr = SecretStr("")
    batch_rows: int = Field(20_000, gt=0)
    flush_interval: PositiveDuration = timedelta(seconds=5)
    # Rows older than this (e.g. "400d") are dropped by a ClickHouse TTL; None keeps everything.
    retention: PositiveDuration | None = None
    # Whether `boucle run` applies pending migrations and the retention TTL itself (as `boucle db
    # migrate` does). None: yes for embedded chDB (the process owns the file), no for a server,
    # where `run` checks the schema is current and stops with one line if it is not.
    auto_migrate: bool | None = None
    # Interactive commands (query, report, cases, db) give up on an unreachable server after this.
    interactive_timeout: PositiveDuration = timedelta(seconds=5)

    def migrates_on_run(self) -> bool:
        """Whether ``boucle run`` may change the schema (see ``auto_migrate``)."""
        return self.url is None if self.auto_migrate is None else self.auto_migrate


class Console(_Strict):
    min_severity: Severity = "high"
    max_lines: int = Field(40, ge=0)


class Outputs(_Strict):
    alerts_jsonl: str = "var/alerts.jsonl"
    dead_letters_jsonl: str = "var/dead_letters.jsonl"
    console: Console = Console()


class Simulation(_Strict):
    """The simulator's knobs. ``profile`` picks the network: ``demo`` (the registry of this file),
    ``retail`` or ``reviews`` (a generated registry of ``sites`` sites; see README, Network profiles).
    ``days`` left unset takes the profile's own length (28 days for the demo)."""

    seed: int = 42
    profile: Literal["demo", "retail", "reviews"] = "demo"
    sites: int | None = Field(None, ge=1, le=100_000)  # generated profiles: how many sites (None: the profile's)
    start: datetime = datetime(2026, 10, 1, tzinfo=timezone.utc)
    days: float | None = Field(None, gt=0)
    volume_scale: float = Field(1.0, gt=0)
    malformed_share: float = Field(0.01, ge=0, le=0.5)
    late_share: float = Field(0.003, ge=0, le=0.5)
    incidents: bool = True

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime) -> datetime:
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone, e.g. 2026-10-01T00:00:00Z")
        return start.astimezone(timezone.utc)


class KafkaTimeouts(_Strict):
    """How long Boucle waits for the brokers, and how often it says so.

    ``unreachable_after``: with the brokers unreachable this long (at start, or in the middle of a
    run), the command ends with one line instead of waiting for ever; records not yet acknowledged
    are waited for this long too. ``report_every``: at most one log line per kind of Kafka trouble
    in this period (the next says how many were held back).
    """

    unreachable_after: PositiveDuration = timedelta(seconds=60)
    report_every: PositiveDuration = timedelta(seconds=30)


class Kafka(_Strict):
    """Kafka topics and client settings (``boucle run --source kafka``, ``simulate``, ``alerts tail``).

    ``librdkafka`` passes straight to every consumer, producer and admin client (SASL/SSL and the
    like). Keys may use ``_`` for ``.`` so the environment can set them one by one:
    ``BOUCLE_KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL=SASL_SSL`` gives ``security.protocol``.

    >>> Kafka(librdkafka={"SASL_MECHANISM": "PLAIN"}).librdkafka
    {'sasl.mechanism': 'PLAIN'}
    >>> Kafka(alerts_topic_template="boucle.alerts.{region}").alerts_topic_template.format(region="north")
    'boucle.alerts.north'
    >>> Kafka().group_id, Kafka(commit_offsets=False).commit_offsets
    ('boucle', False)
    """

    brokers: str = "localhost:9092"  # host:port[,host:port...]
    feedback_topic: str = "boucle.feedback"
    alerts_topic: str = "boucle.alerts"
    dlq_topic: str = "boucle.dlq"
    case_events_topic: str = "boucle.case-events"
    invitations_topic: str = "boucle.invitations"
    # Optional: also publish each alert to e.g. "boucle.alerts.{region}" (fields: region, kind, severity).
    alerts_topic_template: str = ""
    # Create the topics `run` and `simulate` use when they are missing (off: a missing topic is an error).
    create_topics: bool = True
    # After each epoch, commit the feedback topic's next offsets under this consumer group, for lag tools
    # only (kafka-consumer-groups.sh --describe): resuming still comes from the recovery store.
    commit_offsets: bool = True
    group_id: str = "boucle"
    timeouts: KafkaTimeouts = KafkaTimeouts()
    librdkafka: dict[str, str] = {}

    @field_validator("librdkafka", mode="before")
    @classmethod
    def _dotted(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower().replace("_", "."): str(v) for k, v in value.items()}
        return value

    @field_validator("alerts_topic_template")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        try:
            template.format(region="r", kind="k", severity="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{region}}, {{kind}} and {{severity}} may appear, got {template!r} ({exc})") from None
        return template

    @field_validator("group_id")
    @classmethod
    def _group_id(cls, group_id: str) -> str:
        if not group_id.strip() or group_id != group_id.strip() or not group_id.isprintable() or len(group_id) > 249:
            raise ValueError(f"a consumer group id is 1-249 printable characters without surrounding blanks, got {group_id!r}")
        return group_id

    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.brokers.split(",") if b.strip()]


class AttributeAlerts(_Strict):
    """Attribute alerts (the outer loop): detectors per (site, attribute), fusion, lifecycle.

    ``trend``, ``decline``, ``expectation``, ``peer`` and ``clock`` are the parameters of
    :class:`detectors.DownwardTrend`, :class:`detectors.GradualDecline`,
    :class:`detectors.SeasonalExpectation`, :class:`detectors.PeerComparison` and
    :class:`detectors.clock.SeriesClock`. An alert fires
    when one of ``alone`` is among the triggers, or when at least ``min_triggers`` triggers hold
    together. A site alert on an attribute that is also dropping at other sites of the region waits
    ``regional_hold`` of event time, so that a regional incident can claim it. With ``halo``, the
    gradual-decline test sees each rating less what the respondent's other ratings predict of it.

    >>> AttributeAlerts(expectation={"block_hours": 3}).expectation.block_hours
    3
    """

    enabled: bool = True
    alone: list[Literal["trend", "expectation", "peer"]] = ["trend", "expectation"]
    min_triggers: int = Field(2, ge=1)
    trend: TrendParameters = TrendParameters()
    expectation: ExpectationParameters = ExpectationParameters()
    peer: PeerParameters = PeerParameters()
    decline: DeclineParameters = DeclineParameters()
    # river's detectors on the series of some questions, beside (or instead of) Boucle's local ones.
    detectors: list[RiverDetector] = []
    # Each series' detectors run on its own clock, slowed while it answers less than busy_per_day a day:
    # memories and minimum evidence count responses, whatever the calendar time (detectors.clock).
    clock: ClockParameters = ClockParameters()
    # Headline scores (NPS, CSAT, CES, custom) are watched as series too, each brought to a 1-5 scale.
    watch_scores: bool = True
    score_day_sd: float = Field(0.15, ge=0)  # a score's days differ more: it sums every attribute's good days
    # ... so its responses of one day are less independent, and its CUSUM asks more (None: trend.h).
    score_trend_h: float | None = Field(None, gt=0)
    # The gradual-decline test sees each rating less its halo: what the same respondent's other ratings
    # predict of it (their correlation is learnt per site; detectors.Halo).
    halo: bool = True
    peer_min_sites: int = Field(4, ge=2)  # peers with enough responses needed for a comparison
    importance_target: str = "nps"
    importance_half_life: PositiveDuration = timedelta(days=30)  # memory of the key-driver moments
    # Decayed responses with a target a region needs before its importance is its own (fewer: the
    # network's, or "not enough data"), and the responses a prior counts for (detectors.importance).
    importance_min_n: float = Field(50.0, gt=0)
    importance_prior_strength: float = Field(30.0, ge=0)
    regional_share: float = Field(0.5, gt=0, le=1)  # share of a region's sites down together
    regional_min_sites: int = Field(3, ge=2)
    regional_z: float = 2.0  # a site counts as down when its expectation z <= -regional_z
    # A region's pooled responses per question are watched like a site's series: when they drop and
    # regional_min_sites sites (and regional_pooled_share of those active) moved (their recent ratings
    # fell by regional_move and a standard error against the pool's expectation), that is one regional
    # incident too, however few responses each site has.
    regional_pooled: bool = True
    regional_move: float = Field(0.3, gt=0)
    regional_pooled_share: float = Field(0.25, ge=0, le=1)  # of the sites active in the pool, that moved
    regional_hold: Duration = timedelta(hours=4)  # wait before a site alert while its region moves too
    resolve_after: PositiveDuration = timedelta(hours=24)
    resolve_z: float = 1.0  # back to normal: expectation z > -resolve_z and no trigger
    severity_levels: list[float] = [0.25, 0.5, 0.9]  # effect x importance x confidence -> medium/high/critical
    # Responses are judged in slots of order_step of event time, once every input partition has passed
    # a slot by order_delay: one order whatever the batches and partitions (operators.attribute_order).
    # Live runs (wall clock on) use live_order_step: lower latency, and they follow the wall clock anyway.
    order_step: PositiveDuration = timedelta(hours=1)
    live_order_step: PositiveDuration = timedelta(seconds=10)
    order_delay: Duration = timedelta(0)


class Cases(_Strict):
    """Case tracking of hot alerts (issue #6): SLA on event time, simulation of the frontline.

    ``sla``: no action (contact, resolution, escalation) within this time of the response → the case
    is untreated and a ``case_sla`` alert goes to the site's manager. ``sla_grace``: how much later
    (event time) the decision waits for actions still in flight. ``unknown_grace``: how long a case
    event waits for its hot alert before it is dead-lettered (``unknown_alert``).
    """

    enabled: bool = True
    sla: PositiveDuration = timedelta(hours=24)
    sla_grace: Duration = timedelta(0)
    unknown_grace: Duration = timedelta(hours=1)
    shards: int = Field(8, ge=1, le=1024)
    non_respondent_after: PositiveDuration = timedelta(days=3)
    simulate: bool = True  # simulator runs also simulate the frontline and the invitations
    # A hot alert follows its case: republished as updated (contacted, escalated) and resolved.
    follow_hot_alerts: bool = True


class Themes(_Strict):
    """Comment themes: an attribute's ``complaints`` make its theme; ``lexicons`` add themes that are not
    attributes, or replace an attribute's cues (``{theme: {fr: [cue regex], de: [...]}}``)."""

    enabled: bool = True
    window: PositiveDuration = timedelta(days=1)
    min_count: int = Field(5, ge=1)
    min_jump: float = Field(0.15, ge=0, le=1)
    ratio: float = Field(2.0, ge=1)
    min_windows: int = Field(3, ge=1)
    lexicons: dict[str, Phrases] = {}


class Privacy(_Strict):
    """What personal data the stored outputs keep (see README, Privacy)."""

    # Dead letters keep the original message (the warehouse ``raw`` column, the JSONL and Kafka
    # dead-letter outputs); off, their text is masked like comments and the Kafka DLQ value is
    # that masked text (topic/partition/offset headers still point at the original message).
    keep_raw: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOUCLE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    registry: Registry = Registry()
    regions: list[Region] = []
    sites: list[Site] = []
    scores: dict[str, Metric] = Field(default_factory=_default_scores)
    attributes: list[Attribute] = []
    hot_alerts: HotAlerts = HotAlerts()
    input: Input = Input()
    windows: Windows = Windows()
    state: State = State()
    warehouse: Warehouse = Warehouse()
    outputs: Outputs = Outputs()
    simulation: Simulation = Simulation()
    attribute_alerts: AttributeAlerts = AttributeAlerts()
    kafka: Kafka = Kafka()
    cases: Cases = Cases()
    themes: Themes = Themes()
    privacy: Privacy = Privacy()
    notify: Notify = Notify()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment wins over it.
        return env_settings, init_settings

    # Lookups used on hot paths are built once.
    def site_map(self) -> dict[str, Site]:
        return {site.id: site for site in self.sites}

    def site_zones(self) -> dict[str, str]:
        """Each site's IANA zone, whose local days its daily windows follow: the site's ``timezone``,
        else its region's, else its country's when all of that country keeps one time (Babel's
        CLDR zones: FR, DE, JP yes; US, ES, PT no), else ``""`` (UTC)."""
        regions = {r.id: r.timezone for r in self.regions}
        return {s.id: s.timezone or regions.get(s.region, "") or country_zone(s.country) for s in self.sites}

    def metric(self, name: str) -> Metric:
        if name in self.scores:
            return self.scores[name]
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    def theme_lexicons(self) -> dict[str, dict[str, list[str]]]:
        """Every comment theme's cues per language: the attributes' ``complaints``, then ``themes.lexicons``
        (a lexicon named like an attribute replaces its cues). Empty: nothing is themed."""
        lexicons = {a.name: dict(a.complaints) for a in self.attributes if a.complaints}
        lexicons.update({name: dict(cues) for name, cues in self.themes.lexicons.items()})
        return {name: cues for name, cues in lexicons.items() if any(cues.values())}

    def questions(self) -> dict[str, Metric]:
        """Every rated question by name: scores first, then attributes."""
        return {**self.scores, **{a.name: a for a in self.attributes}}
