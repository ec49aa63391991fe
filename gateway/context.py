"""What a process needs, built once from the settings: engine, sessions, PII cipher, bank
profiles. The API, the worker and the CLI each build one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.dispatch.calendar import WorkingCalendar
from gateway.kit.db import make_engine, make_session_factory
from gateway.kit.pii import PiiCipher
from gateway.notifications.config import SmsConfig
from gateway.profiles import BankProfile, load_profiles
from gateway.settings import Settings


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pii: PiiCipher
    profiles: dict[str, BankProfile] = field(default_factory=dict)
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    sms_config: SmsConfig = field(default_factory=SmsConfig)
    # per-process runtime objects built lazily by the areas that need them (e.g. the SMS
    # provider and its rate limiter); dropped with the context
    runtime: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings | None = None) -> Context:
        settings = settings or Settings()
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            pii=settings.pii,
            profiles=load_profiles(settings.bank_profiles_file),
            calendar=WorkingCalendar.from_file(settings.calendar_file),
            sms_config=SmsConfig.load(settings.sms_file),
        )

    def close(self) -> None:
        self.engine.dispose()
