"""SQLAlchemy's ORM through rqlite's dialect (sqlalchemy-rqlite, over pyrqlite), unmodified,
against a real paxosd cluster: tables made from models, rows added and queried, a UNIQUE
constraint refused, on any node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("sqlalchemy_rqlite")

from sqlalchemy import String, create_engine, func, select  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from .cluster import Cluster  # noqa: E402


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "orm_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    karma: Mapped[int] = mapped_column(default=0)


@pytest.fixture(scope="module")
def engines(shared_cluster: Cluster) -> Iterator[list[sqlalchemy.Engine]]:
    made = []
    for node in (1, 2, 3):
        host, port = shared_cluster.http(node).rsplit(":", 1)
        made.append(create_engine(f"rqlite+pyrqlite://{host}:{port}/"))
    yield made
    for engine in made:
        engine.dispose()


def test_the_orm_makes_tables_writes_and_reads_through_any_node(
    engines: list[sqlalchemy.Engine],
) -> None:
    one, two, three = engines
    Base.metadata.create_all(one)
    with Session(two) as session:
        session.add_all([User(username="ada", karma=3), User(username="paxos_expert")])
        session.commit()
    with Session(three) as session:
        names = session.scalars(select(User.username).order_by(User.id)).all()
        assert names == ["ada", "paxos_expert"]
        assert session.scalar(select(func.sum(User.karma))) == 3
    with Session(one) as session:
        session.add(User(username="paxos_expert"))
        with pytest.raises(DBAPIError, match="UNIQUE constraint failed"):
            session.commit()
        session.rollback()
    with Session(two) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
