"""Cold-start recommendation: a new user's (or item's) taste from a handful of ratings.

``protocol`` makes the folds and tasks and computes the metrics; ``methods`` holds the baselines and the
meta-learned models; ``recommender.Recommender`` is the practitioner API (fit, predict, recommend, save)."""
