"""Short descriptions of common entity types: the "label semantics" the span typer adds to each type's
support examples (the type's name and what it covers, with a few examples of it, as one phrase).

``describe(type, given)``: the user's description when given, else the entry below for the type's name
(case and ``-``/``_`` ignored, so ``PER``, ``per`` and ``person`` all resolve), else the name itself with
``-``/``_`` as spaces. Types are named as in WNUT-17, CoNLL-2003, OntoNotes and Few-NERD's coarse types.
"""

from __future__ import annotations

DESCRIPTIONS = {
    "person": "person: the name of a person, e.g. a singer, actor, athlete, politician or friend",
    "location": "location: the name of a place, e.g. a city, country, street, mountain or building",
    "group": "group: the name of a group, e.g. a band, sports team, organisation or political party",
    "corporation": "corporation: the name of a company or business, e.g. a brand, firm or website",
    "product": "product: the name of a product, e.g. a phone, car, game, app or software",
    "creative-work": "creative work: the title of a creative work, e.g. a song, film, book, TV show or album",
    "organization": "organisation: the name of an organisation, e.g. a company, team, party or institution",
    "miscellaneous": "miscellaneous: another named entity, e.g. a nationality, event, language or title",
    "event": "event: the name of an event, e.g. a festival, war, match, election or holiday",
    "building": "building: the name of a building or facility, e.g. an airport, stadium, hospital or hotel",
    "art": "art: the title of a work of art, e.g. a painting, film, book, song or show",
    "other": "other: another named thing, e.g. a law, award, disease, language or living thing",
    "date": "date: a date or period, e.g. a day, month, year or season",
    "time": "time: a time of day, e.g. noon, 5 pm or tonight",
    "money": "money: an amount of money, e.g. 5 dollars or a million euros",
    "none": "none: a common word or phrase, not the name of anything",
}
ALIASES = {
    "per": "person",
    "loc": "location",
    "org": "organization",
    "organisation": "organization",
    "misc": "miscellaneous",
    "gpe": "location",
    "fac": "building",
    "facility": "building",
    "company": "corporation",
    "creative_work": "creative-work",
    "creativework": "creative-work",
    "work_of_art": "art",
    "work-of-art": "art",
    "norp": "group",
}


def describe(name: str, given: dict | None = None) -> str:
    if given and name in given:
        return str(given[name])
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, ALIASES.get(key.replace("-", "_"), key))
    return DESCRIPTIONS.get(key, name.replace("-", " ").replace("_", " "))
