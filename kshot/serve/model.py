"""The served classifier: a ``FewShotClassifier`` kept in step with the database.

Two threads own it. The *model thread* encodes: concurrent requests are micro-batched (they wait up
to ``window`` seconds, or until ``max_batch`` texts, and share one forward pass of the encoder), the
texts of new examples in the same passes as those to predict. The *refit thread* changes the head, copy-on-write: it copies
the published classifier (sharing the encoder), refits the copy's head and publishes it with one
assignment, so predictions never wait for a refit and never see a half-changed head. Examples that
arrive while a refit runs are applied together by the next one.

Changes made through this process are published before their request is answered (the next
prediction sees them). A poller reads the database's version counter every ``poll`` seconds and,
when it moved, applies what other workers or replicas changed: additions go into the head
incrementally (``fit_embeddings(add=True)``, a warm-started refit of the head only, capped at
``ADD_ITERATIONS`` solver iterations: under a stream of additions each refit continues from the last
one's weights, so the head converges over successive refits instead of stalling every add on a full
solve), deletions rebuild the head from the stored embeddings (solved to convergence). Stored examples are never encoded again by the same encoder.

``quantize="int8"`` serves with an int8 copy of the encoder (about twice as fast on a CPU). Each stored
embedding is tagged with the encoder that made it (``fingerprint(model_dir, quantize)``); at start, stored
examples made by another encoder are re-encoded from their texts and written back, and examples another
replica adds with another encoder are re-encoded here in memory, so the head never mixes encoders
unknowingly. The one exception is the model directory's own examples: they have no stored text, so they
keep the float32 embeddings they were fitted with; the server says so at start and ``/v1/health``
counts them (``examples_other_encoder``). ``export`` always writes a float32 model directory; it takes a
snapshot of the head on the refit thread and encodes and writes on a thread of its own, so adds and
deletes never wait for an export.

Under load the encoder's queue is bounded (``max_queue`` texts: past it a request is refused at once with
``Overloaded``) and every request has a deadline (``timeout`` seconds); a request whose client gave up is
skipped. When an encoder pass fails, its requests are retried one by one, so one bad text fails only its
own request. A refit that fails after its examples were committed leaves them stored: the next poll
rebuilds the head from everything stored.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core.errors import KshotError
from ..core.model_format import check_manifest, read_manifest
from ..text.classifier import KIND, FewShotClassifier, saved_windows
from ..text.encoder import windows_key
from .store import Store

ADD_ITERATIONS = 30  # solver iterations per incremental refit (see the module docstring)
TOMBSTONE_S = 60.0  # how long ids deleted here are remembered, so that a late add of them is dropped


class Overloaded(Exception):
    """The encoder's queue is full, or a request waited past its deadline; ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float, limit: str):
        super().__init__(message)
        self.retry_after, self.limit = retry_after, limit


def fingerprint(model_dir, quantize: str = "none") -> str:
    """What stored embeddings depend on: the encoder's name (and its weights, when fine-tuned), ``#w<n>``
    when it reads long texts in n windows, plus ``#int8`` when it runs quantised; read from the model
    directory's JSON without loading anything."""
    base = _fingerprint(model_dir)
    return base if quantize == "none" else f"{base}#{quantize}"


def _fingerprint(model_dir) -> str:
    model_dir = Path(model_dir)
    meta = check_manifest(model_dir, read_manifest(model_dir)[1], KIND)
    try:
        name = meta["params"]["encoder"]
    except (KeyError, TypeError):
        raise KshotError(f"{model_dir}'s manifest names no encoder: the file is damaged") from None
    suffix = windows_key(saved_windows(meta["params"]))
    if not meta.get("finetuned"):
        return f"{name}{suffix}"
    digest = hashlib.sha256()
    for f in sorted((model_dir / "encoder").rglob("*.safetensors")):
        digest.update(f.read_bytes())
    return f"{name}#finetuned:{digest.hexdigest()[:16]}{suffix}"


class ServedModel:
    def __init__(
        self,
        model_dir,
        store: Store,
        window: float = 0.004,
        max_batch: int = 64,
        poll: float = 0.5,
        quantize: str = "none",
        max_queue: int = 256,
        timeout: float = 10.0,
        max_wait: float = 1.0,
        on_batch=None,
    ):
        self.model_dir, self.store = Path(model_dir), store
        self.window, self.max_batch, self.poll = window, max_batch, poll
        self.max_queue, self.timeout, self.on_batch = max(max_queue, max_batch), timeout, on_batch
        self.max_wait = max_wait  # shed when the queue holds more than this many seconds of work
        # the int8 encoder runs on the CPU only, whatever device the model was fitted on
        self.clf = FewShotClassifier.load(self.model_dir, device="cpu" if quantize != "none" else None)
        self.quantize, self.fp32_encoder = quantize, self.clf.encoder_
        self.clf.encoder_ = self.clf.encoder_.quantized(quantize)
        self.model_fingerprint = fingerprint(self.model_dir)  # the model directory's own encoder
        self.encoder = fingerprint(self.model_dir, quantize)  # what embeddings made here are tagged
        self.foreign: set[int] = set()  # ids held with another encoder's embedding (no text to re-encode)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kshot-model")
        self.refitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kshot-refit")
        self.exporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kshot-export")
        self.pending: list[tuple[dict, int]] = []  # (new rows, version) added here, not yet published
        self.pending_lock = threading.Lock()
        self.ids: dict[int, str] = {}  # example id -> label, what the head holds
        self.rows: dict[int, np.ndarray] = {}
        self.recent: dict[int, int] = {}  # id -> version of a change made here, newer than `synced`
        self.synced = -1  # database version of the last reconciliation
        self.model_version = 0  # bumped at every change of the head
        self.ready = False
        self.stale = False  # a refit failed: the head lacks rows that ``ids`` holds
        self.deleted: dict[int, tuple[int, float]] = {}  # id -> (version, time) of a deletion made here
        self.queue: asyncio.Queue | None = None
        self.queued = 0  # texts in the queue
        self.rate = 100.0  # texts per second through the encoder (a moving estimate)
        self.tasks: list[asyncio.Task] = []
        self.polled = time.monotonic()  # when the database last answered the poller
        X = self.clf.head_.X.numpy() if self.clf.head_.X.numel() else np.zeros((0, self.clf.encoder_.dim), np.float32)
        labels = [str(self.clf.classes_[i]) for i in self.clf.head_.y.tolist()]
        store.seed(self.model_fingerprint, X, labels)
        self.synced, index = store.index()  # the database, not the model directory, says what the head holds
        for i, row in self._own(store.embeddings(list(index)), write_back=True).items():
            self.ids[i], self.rows[i] = row.label, row.embedding
        if self.foreign:
            print(
                f"kshot serve: {len(self.foreign)} examples of the model directory were encoded by "
                f"{self.model_fingerprint!r} and have no stored text to re-encode with {self.encoder!r}; "
                "the head uses their float32 embeddings",
                flush=True,
            )
        if index:  # else keep the loaded head: a zeroshot model has classes but no examples
            self._rebuild()
        self.ready = True

    def _own(self, stored: dict, write_back: bool = False) -> dict:
        """The stored rows with embeddings of this encoder: rows another encoder made are re-encoded
        from their texts (and, with ``write_back``, stored again); rows without a text keep theirs and
        are counted in ``foreign``."""
        redo = [i for i, row in stored.items() if row.encoder != self.encoder and row.text is not None]
        if redo:
            made_by = sorted({str(stored[i].encoder) for i in redo})
            X = self.executor.submit(self.clf.embed, [stored[i].text for i in redo]).result()
            stored = {**stored, **{i: stored[i]._replace(embedding=x, encoder=self.encoder) for i, x in zip(redo, X)}}
            if write_back:
                self.store.reencoded({i: stored[i].embedding for i in redo}, self.encoder)
            print(
                f"kshot serve: re-encoded {len(redo)} stored examples made by {', '.join(made_by)} with "
                f"{self.encoder!r}{'' if write_back else ' (in memory)'}",
                flush=True,
            )
        self.foreign.update(i for i, row in stored.items() if row.encoder != self.encoder)
        return stored

    # ------------------------------------------------------------ head state (refit thread)
    def _publish(self, fn) -> None:
        """Apply ``fn`` to a copy of the classifier (its own head, the same encoder) and publish the copy."""
        new = copy.copy(self.clf)
        new.head_, new.classes_ = copy.deepcopy(self.clf.head_), list(self.clf.classes_)
        fn(new)
        self.clf = new
        self.model_version += 1

    def _rebuild(self) -> None:
        ids = sorted(self.rows)
        X = np.stack([self.rows[i] for i in ids]) if ids else np.zeros((0, self.clf.encoder_.dim), np.float32)
        self._publish(lambda clf: clf.fit_embeddings(X, [self.ids[i] for i in ids]))

    def _add(self, new: dict[int, tuple[str, np.ndarray]]) -> None:
        new = {i: v for i, v in new.items() if i not in self.ids}
        if not new:
            return self._heal()
        for i, (label, vec) in new.items():
            self.ids[i], self.rows[i] = label, vec
        if not self.clf.classes_ or self.stale:
            return self._refit(self._rebuild)
        ids = sorted(new)
        X, labels = np.stack([new[i][1] for i in ids]), [new[i][0] for i in ids]
        self._refit(lambda: self._publish(lambda clf: clf.fit_embeddings(X, labels, add=True, max_iter=ADD_ITERATIONS)))

    def _refit(self, fn) -> None:
        """Run a refit; when it fails, the head is marked stale (rebuilt whole by the next refit or poll)
        and the error goes on to the caller."""
        try:
            fn()
        except BaseException:
            self.stale = True
            raise
        self.stale = False

    def _heal(self) -> None:
        if self.stale:
            self._refit(self._rebuild)

    def _remove(self, gone: set[int]) -> None:
        gone = {i for i in gone if i in self.ids}
        if gone:
            for i in gone:
                self.ids.pop(i, None)
                self.rows.pop(i, None)
                self.foreign.discard(i)
            self._refit(self._rebuild)
        else:
            self._heal()

    def reconcile(self) -> bool:
        """Bring the head in step with the database (from any thread but the refit thread)."""
        version = self.store.version()
        if version == self.synced and not self.stale:
            return False
        version, index = self.store.index()
        fresh = [i for i in index if i not in self.ids]
        stored = self._own(self.store.embeddings(fresh)) if fresh else {}
        return self.refitter.submit(self._apply_index, version, index, stored).result()

    def _apply_index(self, version: int, index: dict[int, str], stored: dict) -> bool:
        self._drain()
        skip = {i for i, v in self.recent.items() if v > version}  # changed here after that snapshot
        gone = {i for i in self.ids if i not in index and i not in skip}
        new = {i: stored[i] for i in index if i not in self.ids and i not in skip and i in stored}
        self.recent = {i: v for i, v in self.recent.items() if v > version}
        self.synced = max(self.synced, version)
        old = time.monotonic() - TOMBSTONE_S
        self.deleted = {i: (v, t) for i, (v, t) in self.deleted.items() if t > old}
        new = {i: (s.label, s.embedding) for i, s in new.items()}
        if gone:
            self.ids.update({i: s[0] for i, s in new.items()})
            self.rows.update({i: s[1] for i, s in new.items()})
            self._remove(gone)
        else:
            self._add(new)
        return bool(gone or new)

    def _drain(self) -> None:
        """Publish every example added here so far, in one refit."""
        with self.pending_lock:
            batch, self.pending = self.pending, []
        new = {}
        for rows, version in batch:
            rows = {i: r for i, r in rows.items() if self.deleted.get(i, (-1, 0))[0] < version}  # deleted since
            self.recent.update({i: version for i in rows})
            new.update(rows)
        self._add(new)

    async def run(self, fn, *args, executor=None):
        """Run ``fn`` on the model thread (or ``executor``) from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(executor or self.executor, fn, *args)

    # ------------------------------------------------------------ changes made here
    async def add(
        self, rows: list[tuple[str, str]], source: str, key_id: str | None = None, **caps
    ) -> tuple[list[int], bool]:
        """Encode, store (one transaction; ``caps``: the store's max_per_label, max_labels, max_examples)
        and publish ``rows``; returns (ids, whether the head has them). Once stored, a failing refit does
        not fail the request: the examples are in the database and the next poll rebuilds the head."""
        X = await self.embed([t for t, _ in rows])
        ids, version = await asyncio.to_thread(
            self.store.add_examples,
            [(t, y, x) for (t, y), x in zip(rows, X)],
            source,
            encoder=self.encoder,
            key_id=key_id,
            **caps,
        )
        with self.pending_lock:
            self.pending.append(({i: (y, x) for i, (_, y), x in zip(ids, rows, X)}, version))
        return ids, await self._changed(self._drain)  # one refit for all that arrived meanwhile

    async def _changed(self, fn, *args) -> bool:
        """Run a change of the head on the refit thread after its rows were committed; False when the
        refit failed (logged; the head is rebuilt by the next poll)."""
        try:
            await self.run(fn, *args, executor=self.refitter)
            return True
        except Exception:  # noqa: BLE001
            print(
                "kshot serve: a refit failed after its change was stored; the next poll rebuilds the head", flush=True
            )
            traceback.print_exc()
            return False

    async def delete_example(self, example_id: int, admin: bool = True) -> bool:
        version = await asyncio.to_thread(self.store.delete_example, example_id, admin)
        if version is None:
            return False
        await self._changed(self._applied_remove, {example_id}, version)
        return True

    async def delete_label(self, label: str, admin: bool = True) -> int:
        ids, version = await asyncio.to_thread(self.store.delete_label, label, admin)
        if version is not None:
            await self._changed(self._applied_remove, set(ids), version)
        return len(ids)

    def _applied_remove(self, gone: set[int], version: int) -> None:
        """Remove ids deleted here at ``version``: also those still pending, and those whose add is
        published later (``deleted``)."""
        now = time.monotonic()
        self.deleted.update({i: (version, now) for i in gone})
        self._drain()
        self.recent.update({i: version for i in gone})
        self._remove(gone)

    # ------------------------------------------------------------ prediction
    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list, int]:
        """(embeddings, probabilities, class names, model version) of ``texts`` in one encoder pass."""
        clf, version = self.clf, self.model_version  # the published classifier, used whole
        X = clf.embed(texts)
        if not clf.classes_:
            return X, np.zeros((len(texts), 0)), [], version
        return X, clf.proba_embeddings(X), list(clf.classes_), version

    @property
    def alive(self) -> bool:
        """The batcher and the poller are running."""
        return bool(self.tasks) and not any(t.done() for t in self.tasks)

    def full(self, n: int = 1) -> float:
        """0 when ``n`` more texts may queue, else the seconds of work already queued: the queue holds
        ``max_queue`` texts or ``max_wait`` seconds of the encoder's recent speed."""
        wait = (self.queued + n) / max(self.rate, 1.0)
        if self.queued and (self.queued + n > self.max_queue or wait > self.max_wait):
            return wait
        return 0.0

    async def _batched(self, texts: list[str], embed: bool):
        if not self.alive:
            raise Overloaded("the encoder's batcher is not running; this worker is not ready", 5, "ready")
        wait = self.full(len(texts))
        if wait:
            raise Overloaded(
                f"{self.queued} texts are waiting for the encoder (about {wait:.1f} s of work; this "
                f"worker queues up to {self.max_queue} texts or {self.max_wait:g} s); retry soon",
                wait,
                "max_queue",
            )
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((texts, future, embed))
        self.queued += len(texts)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            raise Overloaded(
                f"the encoder did not reach this request within {self.timeout:g} s", 1 + self.timeout / 4, "timeout"
            ) from None

    async def predict(self, texts: list[str]) -> tuple[np.ndarray, list, int]:
        """(probabilities [len(texts), C], class names, model version), batched with concurrent callers."""
        return await self._batched(texts, False)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of new examples, computed in the same encoder passes as the predictions."""
        return await self._batched(texts, True)

    async def _take(self):
        item = await self.queue.get()
        self.queued -= len(item[0])
        return item

    async def batcher(self) -> None:
        """Collect requests for up to ``window`` seconds and run them as one forward pass."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._take()]
            n, deadline = len(batch[0][0]), loop.time() + self.window
            while n < self.max_batch:
                try:
                    item = await asyncio.wait_for(self._take(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                n += len(item[0])
            batch = [item for item in batch if not item[1].done()]  # skip requests that gave up
            if not batch:
                continue
            try:
                await self._run_batch(batch)
            except Exception:  # noqa: BLE001  (a bug here must not stop the batcher: log it, go on)
                traceback.print_exc()
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the encoder pass failed"))

    async def _run_batch(self, batch: list) -> None:
        texts = [t for item, _, _ in batch for t in item]
        t0 = time.perf_counter()
        try:
            X, proba, classes, version = await self.run(self._forward, texts)
        except Exception as exc:  # noqa: BLE001
            if len(batch) == 1:
                batch[0][1].done() or batch[0][1].set_exception(exc)
                return
            for item in batch:  # one by one: only the request that fails the encoder fails
                if not item[1].done():
                    await self._run_batch([item])
            return
        took = time.perf_counter() - t0
        self.rate = 0.8 * self.rate + 0.2 * (len(texts) / max(took, 1e-3))
        if self.on_batch is not None:
            self.on_batch(len(texts))
        start = 0
        for item, fut, embed in batch:
            part = slice(start, start + len(item))
            if not fut.done():
                fut.set_result(X[part] if embed else (proba[part], classes, version))
            start += len(item)

    async def poller(self, hooks=()) -> None:
        """Every ``poll`` seconds: reconcile with the database, then run ``hooks`` (functions, in a thread)."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                await asyncio.to_thread(self.reconcile)
                for hook in hooks:
                    await asyncio.to_thread(hook)
                self.polled = time.monotonic()
            except Exception as exc:  # noqa: BLE001  (the database may be away for a moment)
                print(
                    f"kshot serve: cannot poll the database: {type(exc).__name__}: "
                    f"{(str(exc).splitlines() or [''])[0][:200]}",
                    flush=True,
                )

    def start(self, hooks=()) -> list[asyncio.Task]:
        self.queue = asyncio.Queue()
        self.tasks = [asyncio.create_task(self.batcher()), asyncio.create_task(self.poller(hooks))]
        return self.tasks

    # ------------------------------------------------------------ export
    def _snapshot(self) -> tuple[FewShotClassifier, list[int], int]:
        """(published classifier, example ids, database version): on the refit thread, in step."""
        self._drain()
        return self.clf, sorted(self.ids), self.synced

    def _fp32(self, clf: FewShotClassifier, ids: list[int]) -> FewShotClassifier:
        """The served classifier with the float32 encoder, its head refitted on float32 embeddings: those
        another encoder made are re-encoded from their texts (what ``FewShotClassifier.load`` will run)."""
        if self.quantize == "none":
            return clf
        stored = self.store.embeddings(ids)
        redo = [i for i, s in stored.items() if s.encoder != self.model_fingerprint and s.text is not None]
        X = dict(zip(redo, self.fp32_encoder._encode_uncached([stored[i].text for i in redo]))) if redo else {}
        ids = sorted(stored)
        out = copy.copy(clf)
        out.encoder_ = self.fp32_encoder
        if not ids:  # a zeroshot model without examples: its head holds none
            return out
        return out.fit_embeddings(
            np.stack([X.get(i, stored[i].embedding) for i in ids]), [stored[i].label for i in ids]
        )

    def _export(self, dest: Path, snapshot=None) -> Path:
        clf, ids, synced = snapshot or self._snapshot()
        if len(clf.classes_) < 1:
            raise KshotError("there are no examples to export; add some first")
        clf = self._fp32(clf, ids)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
        try:
            clf.save(
                tmp,
                info={
                    "serve": {
                        "database_version": synced,
                        "examples": len(ids),
                        "served_quantize": self.quantize,
                        "head_fitted_on": self.model_fingerprint,
                    }
                },
            )
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            os.rename(tmp, dest)  # atomic; fails when dest exists
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    async def export(self, dest: Path) -> Path:
        """Snapshot on the refit thread; encode and write on the export thread."""
        snapshot = await self.run(self._snapshot, executor=self.refitter)
        return await self.run(self._export, dest, snapshot, executor=self.exporter)

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for ex in (self.executor, self.refitter, self.exporter):
            ex.shutdown(wait=False)
