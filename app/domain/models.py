"""Database models (SQLAlchemy 2.0, typed). Migrations: top-level migrations/ (Alembic)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from styledrop.plan import RoundPlan  # pydantic only: the app never imports torch


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # argon2id hash (argon2-cffi's encoded form); None for users who only use API tokens (and the local user).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # HMAC-SHA256 key of this user's webhook signatures (app/domain/webhooks.py); made on first use.
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                  order_by="ApiToken.id")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex; the token itself is never stored
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class WebSession(Base):
    """A browser's session: the cookie holds a random secret, only its SHA-256 is stored (a leaked database
    cannot be replayed as cookies). Anonymous sessions (user_id None) exist only to carry the CSRF token of
    the log-in and sign-up forms; logging in replaces the session, so an attacker cannot plant one."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    user: Mapped[User | None] = relationship()


class Style(Base):
    __tablename__ = "styles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    reference_path: Mapped[str] = mapped_column(String(500), default="")  # relative to the storage root
    # A style made from several reference images: the others, after reference_path (relative paths too).
    extra_references: Mapped[list[Any]] = mapped_column(default=list)
    name: Mapped[str | None] = mapped_column(String(100))  # what the person calls it; the descriptor if None
    content: Mapped[str] = mapped_column(String(500))
    descriptor: Mapped[str] = mapped_column(String(500))
    base_model: Mapped[str] = mapped_column(String(500))
    adapter_kind: Mapped[str] = mapped_column(String(20), default="styledrop")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rounds: Mapped[list[Round]] = relationship(back_populates="style", cascade="all, delete-orphan",
                                               order_by="Round.number", passive_deletes=True)
    generations: Mapped[list[Generation]] = relationship(back_populates="style", cascade="all, delete-orphan",
                                                         passive_deletes=True)
    @property
    def reference_paths(self) -> list[str]:
        """Every reference image of the style, the first one first."""
        return [self.reference_path, *(self.extra_references or [])]

    evaluations: Mapped[list[Evaluation]] = relationship(back_populates="style", cascade="all, delete-orphan",
                                                         passive_deletes=True, order_by="Evaluation.id")


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("style_id", "number", name="uq_round_style_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), index=True)  # JobStatus: app/domain/lifecycle.py
    phase: Mapped[str | None] = mapped_column(String(20))  # training | candidates | scoring, while running
    feedback: Mapped[str | None] = mapped_column(String(10))  # how its training set was chosen: human | clip
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int] = mapped_column(default=0)
    loss: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    # [[step, loss], ...] as training went (thinned to at most LOSS_POINTS), for the pages' loss curve.
    loss_curve: Mapped[list[Any] | None] = mapped_column(JSON)
    # The images drawn while training (two fixed prompts every N steps, styledrop.training_samples), by step:
    # [{"step", "index", "content", "prompt", "seed", "path"}, ...]; written by the round's current attempt.
    training_samples: Mapped[list[Any] | None] = mapped_column(JSON)
    adapter_path: Mapped[str | None] = mapped_column(String(500))  # relative to the storage root
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    celery_task_id: Mapped[str | None] = mapped_column(String(100))
    callback_url: Mapped[str | None] = mapped_column(String(2000))  # webhook of the job's end (app/domain/webhooks.py)

    style: Mapped[Style] = relationship(back_populates="rounds")
    candidates: Mapped[list[Candidate]] = relationship(back_populates="round", cascade="all, delete-orphan",
                                                       order_by="Candidate.id", passive_deletes=True)

    @property
    def plan(self) -> RoundPlan:
        """`parameters` as the typed round plan (rows from before the plan load with its defaults)."""
        return RoundPlan.from_stored(self.parameters, self.number)


class Candidate(Base):
    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(String(500))  # "a chihuahua"
    prompt: Mapped[str] = mapped_column(String(1000))  # "A chihuahua in watercolor painting style"
    # Each candidate's own seed: candidate_seed(round seed, k) = seed x 100,003 + k outgrows 32 bits.
    seed: Mapped[int] = mapped_column(BigInteger)
    image_path: Mapped[str] = mapped_column(String(500))
    clip_text_score: Mapped[float | None] = mapped_column(Float)
    clip_style_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    round: Mapped[Round] = relationship(back_populates="candidates")
    ratings: Mapped[list[Rating]] = relationship(back_populates="candidate", cascade="all, delete-orphan",
                                                 passive_deletes=True)
    # selectin: a round's candidates come with their selections in one more statement, not one per candidate
    # (round summaries count them on every page).
    selection: Mapped[Selection | None] = relationship(back_populates="candidate", cascade="all, delete-orphan",
                                                       passive_deletes=True, lazy="selectin")


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("candidate_id", "user_id", name="uq_rating_candidate_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    value: Mapped[int]  # -1 / +1 thumbs or 1..5 stars
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    candidate: Mapped[Candidate] = relationship(back_populates="ratings")
    user: Mapped[User] = relationship()


class Selection(Base):
    """A candidate chosen to train the next round, by a person or by CLIP feedback."""

    __tablename__ = "selections"
    __table_args__ = (UniqueConstraint("candidate_id", name="uq_selection_candidate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    by: Mapped[str] = mapped_column(String(10))  # human | clip
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))  # the person
    # How: the CLIP rule's name for a CLIP pick, "thumbs up" when a like selected it (so taking the like back
    # unselects it), None for a plain click on Select.
    rule: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidate: Mapped[Candidate] = relationship(back_populates="selection")


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)  # JobStatus: app/domain/lifecycle.py
    image_paths: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    celery_task_id: Mapped[str | None] = mapped_column(String(100))
    callback_url: Mapped[str | None] = mapped_column(String(2000))  # webhook of the job's end (app/domain/webhooks.py)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    style: Mapped[Style] = relationship(back_populates="generations")


class Evaluation(Base):
    """The paper's evaluation (§4, Table 2) of one style: CLIP text and style scores of the base model and of
    every finished round, on held-out prompts with the same seeds. `request` says what was asked (prompt
    list, images per prompt, seed), `result` holds the rows (name, means, spreads, count) and the scorer."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)  # JobStatus: app/domain/lifecycle.py
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    celery_task_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    style: Mapped[Style] = relationship(back_populates="evaluations")


class IdempotencyKey(Base):
    """A create request's `Idempotency-Key` and the answer it got (app/api/idempotency.py): a retried POST
    gets the same answer instead of a second style, round or generation. `response_status` is None while
    the first request is still being handled."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the route and the request body
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LoginFailure(Base):
    """Wrong passwords counted per account name ("account") and per client address ("address") for the log-in
    throttle (app/security/throttle.py), in the database so that every web process counts the same guesses."""

    __tablename__ = "login_failures"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
