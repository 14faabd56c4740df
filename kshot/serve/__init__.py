"""kshot serve: a few-shot text classification service that learns new intents while it runs.

``store`` (the database), ``model`` (the served FewShotClassifier, micro-batching, sync between
replicas), ``guard`` (keys, limits, rate limit, metrics), ``app`` (the FastAPI app and the page in
``static/``). Needs the ``kshot[serve]`` extra.
"""
