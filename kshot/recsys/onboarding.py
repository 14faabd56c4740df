"""Onboarding: which items to ask a newcomer about first, and their answers one at a time.

    session = rec.onboard()                  # Recommender.onboard(strategy="adaptive")
    for row in session.ask(5):               # [{"item", "title"}, ...]
        session.answer(row["item"], 4)       # seen it and rated it 4 ...
    session.answer("Fargo (1996)", None)     # ... or "not seen" (None or "not seen")
    session.recommend(10)                    # from the seen answers

Strategies (as in the elicitation studies of Rashid et al., IUI 2002): ``popular`` asks the items most warm
users rated (a newcomer has likely seen them); ``random`` a seeded random order; ``adaptive`` (default)
asks, after each answer, the items the model now ranks highest for this user: the items a user who liked
these is most likely to have seen (the model's popularity prior before any answer). An item the user has
seen leaves the list of recommendations and tells the model about the user; "not seen" changes nothing.
``ask(n)`` first repeats the asked items still without an answer, then adds new ones; answering an item
that was never asked, or twice, is an error.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import KshotError, check_choice, check_positive_int

STRATEGIES = ("adaptive", "popular", "random")
NOT_SEEN = ("not seen", "not-seen", "unseen", "no", "")


class Onboarding:
    def __init__(self, recommender, strategy: str = "adaptive", user_features=None, seed: int = 0):
        recommender._check()
        self.rec = recommender
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.features = recommender._features(user_features)
        self.seed = seed
        self.asked: list[int] = []  # catalogue positions, in the order they were asked
        self.answers: dict[int, float | None] = {}

    # ---- asking ---------------------------------------------------------------------------------------

    def pending(self) -> list[int]:
        return [i for i in self.asked if i not in self.answers]

    def ask(self, n: int = 1) -> list[dict]:
        """The next ``n`` items to ask about (the unanswered asked ones first)."""
        n = check_positive_int("n", n, 1)
        if n > self.rec.n_items:
            raise KshotError(f"n={n} is larger than the catalogue ({self.rec.n_items} items)")
        out = self.pending()[:n]
        fresh = self.next_items(n - len(out))
        self.asked.extend(fresh)
        return [{"item": self.rec.item_ids_[i], "title": self.rec.title(i)} for i in [*out, *fresh]]

    def next_items(self, n: int) -> list[int]:
        """``n`` new items (never asked) by the strategy, given the answers so far."""
        if n <= 0:
            return []
        scores = self.strategy_scores().astype(np.float64)
        scores[self.asked] = -np.inf
        order = np.argsort(-scores, kind="stable")[:n]
        return [int(i) for i in order if np.isfinite(scores[i])]

    def strategy_scores(self) -> np.ndarray:
        m = self.rec.method_
        if self.strategy == "random":
            return np.random.default_rng(self.seed).random(self.rec.n_items)
        if self.strategy == "adaptive" and not m.predicts_ratings:
            items, ratings = self.support()
            return m.predict_items(items, ratings, self.features)
        return self.rec.popularity_.astype(np.float64)  # popular (and adaptive for a rating predictor)

    # ---- answers ---------------------------------------------------------------------------------------

    def answer(self, item, rating) -> None:
        """Record the answer about an asked ``item``: a rating on the model's scale, or ``None`` /
        ``"not seen"`` when the user has not seen it."""
        pos = int(self.rec.positions([item])[0])
        if pos not in self.asked:
            raise KshotError(
                f"item {item} was never asked; answer the items ask() listed"
                + (
                    f" ({', '.join(self.rec.item_ids_[i] for i in self.pending()[:5])} are waiting)"
                    if self.pending()
                    else ""
                )
            )
        if pos in self.answers:
            raise KshotError(f"item {item} is already answered ({self._shown(self.answers[pos])})")
        if isinstance(rating, str) and rating.strip().lower() in NOT_SEEN:
            rating = None
        if rating is not None:
            value = self.rec.on_scale(rating)
            if value is None:
                lo, hi = self.rec.scale_
                raise KshotError(
                    f"answer {rating!r} for item {item} is neither a rating in {lo:g}..{hi:g} nor 'not seen'"
                )
            rating = value
        self.answers[pos] = rating

    @staticmethod
    def _shown(rating) -> str:
        return "not seen" if rating is None else f"rated {rating:g}"

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """The seen answers as (positions, ratings), in the order they were given."""
        seen = [(i, r) for i, r in self.answers.items() if r is not None]
        return (np.array([i for i, _ in seen], np.int64), np.array([r for _, r in seen], np.float32))

    def recommend(self, k: int = 10, explain: bool = False) -> list[dict]:
        """Recommendations from the seen answers (the seen items left out)."""
        items, ratings = self.support()
        user = {self.rec.item_ids_[i]: float(r) for i, r in zip(items, ratings)}
        return self.rec.recommend(user, k, user_features=self.features, explain=explain)
