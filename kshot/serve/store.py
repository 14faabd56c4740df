"""The service's database: examples (text, label, embedding), API keys, a version counter.

SQLAlchemy Core over SQLite (a file, WAL mode: the default) or PostgreSQL (by URL, for several replicas).
The database is the source of truth: every change to the examples bumps ``state.version`` in the same
transaction, and each replica polls that counter to pick up the others' changes. Each example's embedding
is stored beside its text (float32 bytes), so a restart or a new replica never re-encodes the history,
and tagged with the encoder that made it (``examples.encoder``: the model's fingerprint, plus ``#int8``
for a quantised encoder), so that embeddings of two encoders are never mixed unknowingly.

Schema migrations are the numbered functions in ``MIGRATIONS``; ``migrate`` applies the missing ones in
order, each in its own transaction, under a lock on PostgreSQL so that replicas starting together run
each migration once.

Keys are ``ks_<id>_<secret>``: only ``id``, a random salt and sha256(salt + secret) are stored, and a key
is checked with ``hmac.compare_digest``. A key may expire (``expires``, epoch seconds) and be revoked
(``revoked``); each example records the id of the key that wrote it (``examples.key_id``, schema 3).

Writers serialise on the version row: on PostgreSQL every writing transaction starts with
``SELECT ... FOR UPDATE`` of it (on SQLite, ``BEGIN IMMEDIATE`` takes the database's write lock), so the
per-label and total caps are checked against what the previous writer committed, and example ids are
handed out in commit order (paging by ``after_id`` never skips a row that commits late).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import NamedTuple

import numpy as np
import sqlalchemy as sa

from ..core.errors import KshotError

ROLES = ("read", "write", "admin")  # each role may do what the roles before it may
meta = sa.MetaData()
state = sa.Table(
    "state", meta, sa.Column("name", sa.String(64), primary_key=True), sa.Column("value", sa.Text, nullable=False)
)
examples = sa.Table(
    "examples",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("text", sa.Text, nullable=True),  # NULL: an example that came with the model directory
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # model | api | feedback
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("encoder", sa.String(200), nullable=True),  # what made the embedding (schema 2)
    sa.Column("key_id", sa.String(16), nullable=True),  # the key that wrote it (schema 3)
    sa.Index("ix_examples_label", "label"),
)
keys = sa.Table(
    "api_keys",
    meta,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=True),  # epoch seconds; NULL: never (schema 3)
    sa.Column("revoked", sa.Float, nullable=True),  # epoch seconds of the revocation (schema 3)
)
KEY_ID = re.compile(r"[0-9a-f]{12}")


def _v1(conn) -> None:
    for table in (state, examples, keys):  # today's tables; _v2 and _v3 skip the columns they have
        table.create(conn, checkfirst=True)
    conn.execute(state.insert().values(name="version", value="0"))


def _v2(conn) -> None:
    """Each example records the encoder that made its embedding; older rows were made by the model's."""
    if "encoder" not in {c["name"] for c in sa.inspect(conn).get_columns("examples")}:
        conn.execute(sa.text("ALTER TABLE examples ADD COLUMN encoder VARCHAR(200)"))
    model = conn.execute(sa.select(state.c.value).where(state.c.name == "model")).scalar()
    if model is not None:
        conn.execute(examples.update().where(examples.c.encoder.is_(None)).values(encoder=model))


def _v3(conn) -> None:
    """Keys can expire and be revoked; each example records the key that wrote it."""
    for table, column, kind in (
        ("api_keys", "expires", "FLOAT"),
        ("api_keys", "revoked", "FLOAT"),
        ("examples", "key_id", "VARCHAR(16)"),
    ):
        if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))


MIGRATIONS = [_v1, _v2, _v3]  # MIGRATIONS[i] takes the schema from version i to i + 1; append, never edit


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the client hears of it
    cur.execute("PRAGMA busy_timeout=20000")  # concurrent writers (several workers) wait, not fail
    cur.close()


def safe_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (not a URL SQLAlchemy can read: hide whatever follows a ':' before '@')
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def make_engine(url: str, immediate: bool = True) -> sa.Engine:
    """An engine for ``sqlite:///file.db`` or ``postgresql://...`` (psycopg 3 driver); on SQLite,
    ``immediate`` transactions take the write lock when they begin (for the writers)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        sqlite = url.startswith("sqlite")
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"check_same_thread": False, "timeout": 20} if sqlite else {}
        )
    except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
        raise KshotError(
            f"--db {safe_url(url)!r} is not a database URL this service can use "
            f"(sqlite:///FILE or postgresql://USER@HOST:PORT/DB): "
            f"{type(exc).__name__}".splitlines()[0]
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # our own BEGIN IMMEDIATE: a write transaction takes the write lock first, so it never has to
        # upgrade a read lock (which fails at once with "database is locked" under concurrent writers)
        sa.event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    elif engine.dialect.name != "postgresql":
        raise KshotError(f"--db {safe_url(url)!r}: the service runs on sqlite or postgresql, not {engine.dialect.name}")
    return engine


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def _blob(vec) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.reader = make_engine(url, immediate=False) if self.engine.dialect.name == "sqlite" else self.engine
        try:
            self.migrate()
        except sa.exc.OperationalError as exc:
            message = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            raise KshotError(f"cannot open database {safe_url(url)!r}: {message}".replace(url, safe_url(url))) from None

    # ------------------------------------------------------------ schema
    def schema_version(self, conn) -> int:
        if not sa.inspect(conn).has_table("state"):
            return 0
        row = conn.execute(sa.select(state.c.value).where(state.c.name == "schema")).first()
        return int(row[0]) if row else 1  # version 1 did not record itself

    def migrate(self) -> int:
        """Apply the missing migrations; returns the schema version."""
        while True:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7216016)"))
                current = self.schema_version(conn)
                if current > len(MIGRATIONS):
                    raise KshotError(
                        f"database {safe_url(self.url)!r} has schema version {current}, newer than this "
                        f"kshot ({len(MIGRATIONS)}); upgrade kshot"
                    )
                if current == len(MIGRATIONS):
                    return current
                MIGRATIONS[current](conn)
                self._set(conn, "schema", str(current + 1))

    def _set(self, conn, name: str, value: str) -> None:
        if conn.execute(state.update().where(state.c.name == name).values(value=value)).rowcount == 0:
            conn.execute(state.insert().values(name=name, value=value))

    def get(self, name: str) -> str | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(state.c.value).where(state.c.name == name)).first()
        return row[0] if row else None

    def _bump(self, conn) -> int:
        """Increment the version counter (inside the caller's transaction); returns the new version."""
        conn.execute(
            state.update()
            .where(state.c.name == "version")
            .values(value=sa.cast(sa.cast(state.c.value, sa.Integer) + 1, sa.Text))
        )
        return int(conn.execute(sa.select(state.c.value).where(state.c.name == "version")).scalar_one())

    def version(self) -> int:
        return int(self.get("version") or 0)

    # ------------------------------------------------------------ model seeding
    def seed(self, fingerprint: str, X: np.ndarray, labels: list[str]) -> bool:
        """On first use, store the examples of the model directory (embeddings, no texts, made by the
        model's own encoder: tagged ``fingerprint``) and the model's fingerprint; later, check the
        fingerprint. Returns True when it seeded."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7216017)"))
            known = conn.execute(sa.select(state.c.value).where(state.c.name == "model")).first()
            if known:
                self.check_model(fingerprint, known[0])
                return False
            now = time.time()
            if len(labels):
                conn.execute(
                    examples.insert(),
                    [
                        {
                            "text": None,
                            "label": y,
                            "embedding": _blob(x),
                            "source": "model",
                            "created": now,
                            "encoder": fingerprint,
                        }
                        for x, y in zip(X, labels)
                    ],
                )
            self._set(conn, "model", fingerprint)
            self._bump(conn)
            return True

    def check_model(self, fingerprint: str, known: str | None = None) -> None:
        """Raise KshotError when the database's examples were encoded by another encoder."""
        known = known if known is not None else self.get("model")
        if known is not None and known != fingerprint:
            raise KshotError(
                f"database {safe_url(self.url)!r} holds examples encoded by {known!r}, not by this "
                f"model's encoder {fingerprint!r}; use another --db for this model"
            )

    def _lock(self, conn) -> None:
        """Start a writing transaction: on PostgreSQL, lock the version row (writers go one at a time);
        SQLite's ``BEGIN IMMEDIATE`` has already taken the write lock."""
        if self.engine.dialect.name == "postgresql":
            conn.execute(sa.select(state.c.value).where(state.c.name == "version").with_for_update())

    # ------------------------------------------------------------ examples
    def add_examples(
        self,
        rows: list[tuple[str, str, np.ndarray]],
        source: str = "api",
        max_per_label: int | None = None,
        encoder: str | None = None,
        key_id: str | None = None,
        max_labels: int | None = None,
        max_examples: int | None = None,
    ) -> tuple[list[int], int]:
        """Insert (text, label, embedding) rows, their embeddings made by ``encoder`` (default: the
        model's), written with the key ``key_id``, in one transaction; returns (ids, new version).

        ``max_per_label``, ``max_labels``, ``max_examples``: refuse (LimitError naming the limit) when
        the rows would pass one, counted inside the transaction."""
        with self.engine.begin() as conn:
            self._lock(conn)
            wanted: dict[str, int] = {}
            for _, label, _ in rows:
                wanted[label] = wanted.get(label, 0) + 1
            if max_per_label is not None:
                counts = dict(
                    conn.execute(
                        sa.select(examples.c.label, sa.func.count())
                        .where(examples.c.label.in_(list(wanted)))
                        .group_by(examples.c.label)
                    ).all()
                )
                for label, n in wanted.items():
                    if counts.get(label, 0) + n > max_per_label:
                        raise LimitError(
                            "max_examples_per_label",
                            max_per_label,
                            f"label {label!r} has {counts.get(label, 0)} examples; "
                            f"{n} more would pass the limit of {max_per_label} per label",
                        )
            if max_labels is not None:
                known = {
                    y
                    for (y,) in conn.execute(
                        sa.select(examples.c.label).where(examples.c.label.in_(list(wanted))).distinct()
                    )
                }
                new = [y for y in wanted if y not in known]
                if new:
                    have = conn.execute(sa.select(sa.func.count(sa.distinct(examples.c.label)))).scalar_one()
                    if have + len(new) > max_labels:
                        raise LimitError(
                            "max_labels",
                            max_labels,
                            f"there are {have} labels; {len(new)} new "
                            f"({new[0]!r}{', ...' if len(new) > 1 else ''}) would pass the limit "
                            f"of {max_labels} labels",
                        )
            if max_examples is not None:
                have = conn.execute(sa.select(sa.func.count()).select_from(examples)).scalar_one()
                if have + len(rows) > max_examples:
                    raise LimitError(
                        "max_examples",
                        max_examples,
                        f"there are {have} examples; {len(rows)} more "
                        f"would pass the limit of {max_examples} examples in all",
                    )
            now = time.time()
            if encoder is None:
                encoder = conn.execute(sa.select(state.c.value).where(state.c.name == "model")).scalar()
            ids = [
                conn.execute(
                    examples.insert().values(
                        text=t, label=y, embedding=_blob(x), source=source, created=now, encoder=encoder, key_id=key_id
                    )
                ).inserted_primary_key[0]
                for t, y, x in rows
            ]
            return ids, self._bump(conn)

    def delete_example(self, example_id: int, admin: bool = True) -> int | None:
        """Delete one example; returns the new version, or None when there is no such id. Without
        ``admin``, an example that came with the model directory is refused (Forbidden)."""
        with self.engine.begin() as conn:
            self._lock(conn)
            source = conn.execute(sa.select(examples.c.source).where(examples.c.id == example_id)).scalar()
            if source is None:
                return None
            if source == "model" and not admin:
                raise Forbidden(f"example {example_id} came with the model directory; deleting it needs role 'admin'")
            conn.execute(examples.delete().where(examples.c.id == example_id))
            return self._bump(conn)

    def delete_label(self, label: str, admin: bool = True) -> tuple[list[int], int | None]:
        """Delete every example of ``label``; returns (their ids, new version or None). Without ``admin``,
        a label holding examples of the model directory is refused (Forbidden)."""
        with self.engine.begin() as conn:
            self._lock(conn)
            rows = conn.execute(sa.select(examples.c.id, examples.c.source).where(examples.c.label == label)).all()
            if not rows:
                return [], None
            seeds = sum(source == "model" for _, source in rows)
            if seeds and not admin:
                raise Forbidden(
                    f"label {label!r} holds {seeds} examples that came with the model directory; "
                    "deleting it needs role 'admin'"
                )
            conn.execute(examples.delete().where(examples.c.label == label))
            return [i for i, _ in rows], self._bump(conn)

    def index(self) -> tuple[int, dict[int, str]]:
        """(version, {id: label}) of every example; the rows are at least as new as the version."""
        with self.reader.connect() as conn:
            version = int(conn.execute(sa.select(state.c.value).where(state.c.name == "version")).scalar_one())
            rows = conn.execute(sa.select(examples.c.id, examples.c.label)).all()
        return version, dict(rows)

    def embeddings(self, ids: list[int]) -> dict[int, Stored]:
        """{id: (label, embedding, encoder that made it, text or None)} of the examples ``ids`` still stored."""
        out = {}
        cols = (examples.c.id, examples.c.label, examples.c.embedding, examples.c.encoder, examples.c.text)
        with self.reader.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for i, label, blob, encoder, text in conn.execute(sa.select(*cols).where(examples.c.id.in_(chunk))):
                    out[i] = Stored(label, np.frombuffer(blob, dtype=np.float32), encoder, text)
        return out

    def reencoded(self, vectors: dict[int, np.ndarray], encoder: str) -> None:
        """Replace the embeddings of existing examples by ones ``encoder`` made of the same texts (the
        examples, labels and version do not change; ids deleted meanwhile are skipped)."""
        items = list(vectors.items())
        for start in range(0, len(items), 500):
            with self.engine.begin() as conn:
                for i, vec in items[start : start + 500]:
                    conn.execute(
                        examples.update().where(examples.c.id == i).values(embedding=_blob(vec), encoder=encoder)
                    )

    def encoders(self) -> dict[str | None, int]:
        """How many stored examples each encoder made."""
        with self.reader.connect() as conn:
            return dict(conn.execute(sa.select(examples.c.encoder, sa.func.count()).group_by(examples.c.encoder)).all())

    def label_counts(self) -> dict[str, int]:
        with self.reader.connect() as conn:
            return dict(conn.execute(sa.select(examples.c.label, sa.func.count()).group_by(examples.c.label)).all())

    def examples(self, label: str | None = None, after_id: int = 0, limit: int | None = None) -> list[dict]:
        q = sa.select(
            examples.c.id, examples.c.text, examples.c.label, examples.c.source, examples.c.key_id, examples.c.created
        ).order_by(examples.c.id)
        q = q.where(examples.c.id > after_id).limit(limit)
        if label is not None:
            q = q.where(examples.c.label == label)
        with self.reader.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # ------------------------------------------------------------ keys
    def create_key(self, role: str, expires: float | None = None) -> str:
        """A new key of ``role``, valid until ``expires`` (epoch seconds; None: no expiry)."""
        if role not in ROLES:
            raise KshotError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        with self.engine.begin() as conn:
            conn.execute(
                keys.insert().values(
                    id=key_id, salt=salt, hash=_hash(salt, secret), role=role, created=time.time(), expires=expires
                )
            )
        return f"ks_{key_id}_{secret}"

    def count_keys(self) -> int:
        with self.reader.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one()

    def list_keys(self) -> list[dict]:
        """Every key: id, role, created, expires, revoked (never the hash)."""
        cols = (keys.c.id, keys.c.role, keys.c.created, keys.c.expires, keys.c.revoked)
        with self.reader.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(*cols).order_by(keys.c.created, keys.c.id))]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke the key ``key_id`` (the id is the part after ``ks_``); False when there is none or it
        was revoked already."""
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    keys.update().where(keys.c.id == key_id, keys.c.revoked.is_(None)).values(revoked=time.time())
                ).rowcount
                > 0
            )

    def key_rows(self, key_id: str | None = None) -> dict[str, KeyRow]:
        """{id: KeyRow} of every key (or of ``key_id`` alone): what the service checks keys against."""
        q = sa.select(keys.c.id, keys.c.salt, keys.c.hash, keys.c.role, keys.c.expires, keys.c.revoked)
        if key_id is not None:
            q = q.where(keys.c.id == key_id)
        with self.reader.connect() as conn:
            return {r[0]: KeyRow(*r[1:]) for r in conn.execute(q)}

    def check_key(self, key: str) -> str | None:
        """The role of ``key``, or None when it is not a valid key (unknown, wrong, expired or revoked)."""
        key_id = parse_key(key)
        row = self.key_rows(key_id).get(key_id) if key_id else None
        return verify_key(key, row)


def parse_key(key: str) -> str | None:
    """The id of a key shaped ``ks_<12 hex>_<secret>``, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "ks" or not KEY_ID.fullmatch(parts[1]) or not parts[2]:
        return None
    return parts[1]


def verify_key(key: str, row: KeyRow | None, now: float | None = None) -> str | None:
    """The role of ``key`` checked against its stored ``row`` (constant time), or None."""
    secret = key.split("_", 2)[-1]
    if row is None:
        hmac.compare_digest(_hash("0" * 32, secret), "0" * 64)  # same work as a known id
        return None
    if not hmac.compare_digest(_hash(row.salt, secret), row.hash):
        return None
    if row.revoked is not None or (row.expires is not None and row.expires <= (now or time.time())):
        return None
    return row.role


class KeyRow(NamedTuple):
    salt: str
    hash: str
    role: str
    expires: float | None
    revoked: float | None


class Forbidden(KshotError):
    """A change the caller's role may not make (HTTP 403)."""


class Stored(NamedTuple):
    label: str
    embedding: np.ndarray
    encoder: str | None
    text: str | None


class LimitError(KshotError):
    """A request passed one of the service's limits (``limit`` names it)."""

    def __init__(self, limit: str, value, message: str, status: int = 413, field: str | None = None):
        super().__init__(message)
        self.limit, self.value, self.status, self.field = limit, value, status, field
