"""A small existing back office: its own SQLAlchemy models and its own `companies` table.

This is the host's code as it was before crmrules; nothing here knows about
crmrules. Its column names are its own (`title`, `city_name`, `tier`,
`account_manager`), not crmrules' (`name`, `city`, `segment`, `responsible`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Company(Base):
    __tablename__ = "companies"

    company_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(200))
    city_name: Mapped[str | None] = mapped_column(sa.String(100))
    region_name: Mapped[str | None] = mapped_column(sa.String(100))
    tier: Mapped[str | None] = mapped_column(sa.String(1))
    staff_count: Mapped[int | None] = mapped_column(sa.Integer)
    account_manager: Mapped[str | None] = mapped_column(sa.String(40))
    registered: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Order(Base):
    """The host's other business: orders, which crmrules never sees."""

    __tablename__ = "orders"

    order_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(sa.ForeignKey("companies.company_id"))
    total: Mapped[int] = mapped_column(sa.Integer)


def register_company(session: Session, company: Company) -> None:
    """The host's own operation: it adds a company in its own transaction."""
    session.add(company)
    session.flush()


def place_order(session: Session, company_id: str, total: int) -> Order:
    order = Order(company_id=company_id, total=total)
    session.add(order)
    session.flush()
    return order
