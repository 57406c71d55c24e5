"""Marketer's words for segment labels: "Lapsed, frequent, high spend" instead of "High recency".

Two vocabularies with the signature `segjob.model.profile.Vocabulary` (feature name, "High"/"Low" or,
to tell apart segments that share a label, "Higher"/"Lower", segment mean in original units) ->
words, or None for the generic "High <feature>":

- `marketer_words` for purchase-history features (`--transactions`), whose names segjob chose;
- `column_words` for table and query sources, which guesses the meaning from the column name's
  word parts ("days_since_last_order" is a recency, "NumWebPurchases" a count of web purchases).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# concept -> words for ("High", "Low"). High recency means long ago.
_CONCEPT_WORDS = {
    "recency": ("Lapsed", "Recent"),
    "frequency": ("Frequent", "Infrequent"),
    "spend": ("High spend", "Low spend"),
    "basket": ("Big baskets", "Small baskets"),
    "tenure": ("Long-standing", "New"),
    "interval_mean": ("Slow to return", "Quick to return"),
    "interval_std": ("Irregular", "Regular"),
    "income": ("High income", "Low income"),
    "age": ("Older", "Younger"),
    "birth_year": ("Younger", "Older"),
}

# concept -> words for ("Higher", "Lower"): how segments that share a label differ.
_COMPARED_WORDS = {
    "recency": ("Less recent", "More recent"),
    "frequency": ("More frequent", "Less frequent"),
    "spend": ("Higher spend", "Lower spend"),
    "basket": ("Bigger baskets", "Smaller baskets"),
    "tenure": ("Longer-standing", "Newer"),
    "interval_mean": ("Slower to return", "Quicker to return"),
    "interval_std": ("Less regular", "More regular"),
    "income": ("Higher income", "Lower income"),
    "age": ("Older", "Younger"),
    "birth_year": ("Younger", "Older"),
}
COMPARED = {"High": "Higher", "Low": "Lower"}
# The extreme one of segments that share "High ..." or "Low ...": "Very high ...", "Very low ...".
VERY = {"High": "Very high", "Low": "Very low"}
_VERY_WORDS = {"recency": ("Long lapsed", "Very recent"), "tenure": ("Very long-standing", "Newest")}

# purchase-history feature (segjob.source.purchases.FEATURES) -> concept
_TRANSACTION_CONCEPTS = {
    "recency": "recency",
    "frequency": "frequency",
    "monetary_total": "spend",
    "monetary_avg": "basket",
    "tenure": "tenure",
    "interval_mean": "interval_mean",
    "interval_std": "interval_std",
}

# A frequency (purchase days, orders) below this many is a single purchase: "One-off".
ONE_OFF_BELOW = 1.5


def marketer_words(feature: str, word: str, value: float | None = None) -> str | None:
    """Marketer's words for a purchase-history feature that stands out, or None to keep the
    generic label ("High age").

    `word` is the profile's direction, "High" or "Low" ("Mid" gives None); `value` is the
    segment's centroid in original units, if known: a low frequency below 1.5 purchases is
    "One-off" rather than "Infrequent". Join the words of a segment with ", " and lower-case all
    but the first: "Recent, frequent, high spend".
    """
    concept = _TRANSACTION_CONCEPTS.get(feature)
    return _concept_words(concept, word, value) if concept else None


def _concept_words(concept: str, word: str, value: float | None) -> str | None:
    if word in ("Very high", "Very low"):
        plain = _concept_words(concept, word.removeprefix("Very ").capitalize(), value)
        if concept in _VERY_WORDS:
            return _VERY_WORDS[concept][0 if word == "Very high" else 1]
        return plain if plain == "One-off" or plain is None else f"Very {plain[0].lower()}{plain[1:]}"
    if word in ("Higher", "Lower"):
        higher, lower = _COMPARED_WORDS[concept]
        return higher if word == "Higher" else lower
    if word not in ("High", "Low"):
        return None
    if concept == "frequency" and word == "Low" and value is not None and value < ONE_OFF_BELOW:
        return "One-off"
    high, low = _CONCEPT_WORDS[concept]
    return high if word == "High" else low


# A segment's position on a feature (its centre against the population, in standard deviations of
# the model column) at or beyond this is high or low for its persona.
PERSONA_POSITION = 0.5


def persona(positions: dict[str, float], frequency: float | None) -> str | None:
    """The recency/frequency/monetary persona marketers use for a segment ("Champions", "At risk",
    ...), from its positions on recency, frequency and spend (monetary_total, else monetary_avg;
    centre minus population mean, in standard deviations of the model column) and its mean
    frequency; None without recency and frequency.

    Recent (recency at least PERSONA_POSITION below the mean): frequent and big-spending
    "Champions", frequent or big-spending "Loyal customers", one purchase "New customers", else
    "Potential loyalists". Long ago (as far above): frequent and big-spending "Can't lose them",
    frequent or big-spending "At risk", one purchase "Lost", else "Hibernating". In between:
    frequent and big-spending "Loyal customers", one of the two "Need attention", one purchase
    "About to sleep", else "Promising".
    """
    if "recency" not in positions or "frequency" not in positions:
        return None
    recent = -positions["recency"]
    spend = positions.get("monetary_total", positions.get("monetary_avg", 0.0))
    often, big = positions["frequency"] >= PERSONA_POSITION, spend >= PERSONA_POSITION
    one_off = frequency is not None and frequency < ONE_OFF_BELOW
    if recent >= PERSONA_POSITION:
        if often and big:
            return "Champions"
        if often or big:
            return "Loyal customers" if not one_off else "New big spenders"
        return "New customers" if one_off else "Potential loyalists"
    if recent <= -PERSONA_POSITION:
        if often and big:
            return "Can't lose them"
        if often or big:
            return "At risk"
        return "Lost" if one_off else "Hibernating"
    if often and big:
        return "Loyal customers"
    if often or big:
        return "Need attention"
    return "About to sleep" if one_off else "Promising"


def vocabulary_for(purchase_history: bool) -> Callable[[str, str, float | None], str | None]:
    """The vocabulary for a job's labels: `marketer_words` for purchase histories, else `column_words`."""
    return marketer_words if purchase_history else column_words


# --- column names ------------------------------------------------------------------------------

_RECENCY = {"recency", "recent"}
_TENURE = {"tenure", "since", "first", "seniority", "months", "joined"}
_SPEND = {"monetary", "spend", "spending", "spent", "revenue", "sales", "amount", "amt", "mnt", "charges"}
_AVERAGE = {"avg", "average", "mean", "per"}
# count keyword -> the noun a label uses ("Many web purchases")
_COUNTS = {
    "frequency": "purchases",
    "freq": "purchases",
    "purchases": "purchases",
    "purchase": "purchases",
    "orders": "orders",
    "order": "orders",
    "visits": "visits",
    "visit": "visits",
    "transactions": "transactions",
    "transaction": "transactions",
    "trips": "trips",
}
_INCOME = {"income", "salary", "earnings"}
_PERIODS = {"daily", "weekly", "monthly", "annual", "yearly"}
# Words that add nothing to a label: counts, units, scales ("Spending Score (1-100)": spend).
_FILLER = {
    "num",
    "number",
    "no",
    "n",
    "count",
    "cnt",
    "nb",
    "of",
    "the",
    "on",
    "in",
    "per",
    "total",
    "sum",
    "score",
    "k",
    "usd",
    "eur",
    "gbp",
    "days",
    "day",
    "month",
    "year",
    "week",
    "customer",
    "customers",
}


def column_words(feature: str, word: str, value: float | None = None) -> str | None:
    """Marketer's words for a table or query column that stands out, guessed from its name, or
    None to keep the generic label ("High plan_level").

    The name is split into words (on `_`, `-`, spaces and camelCase) and matched
    case-insensitively: recency ("recency_days", "days_since_last_order") reads "Lapsed"/"Recent";
    tenure ("tenure", "customer_since", "months") "Long-standing"/"New"; spend ("monetary",
    "revenue", "TotalCharges", "Spending Score") "High spend"/"Low spend", with a period or a
    category kept ("High monthly spend", "High spend on wines" for "MntWines"); counts
    ("frequency", "num_orders", "visits") "Frequent"/"Infrequent" ("One-off" below 1.5), or "Many
    web purchases" for "NumWebPurchases"; income "High income"/"Low income"; age "Older"/"Younger".
    """
    if word not in ("High", "Low", "Higher", "Lower", "Very high", "Very low"):
        return None
    tokens = _words(feature)
    found = set(tokens)
    if found & _RECENCY or ("last" in found and not found & _SPEND):
        return _concept_words("recency", word, value)
    if found & _TENURE:
        return _concept_words("tenure", word, value)
    if found & _INCOME:
        return _concept_words("income", word, value)
    if "age" in found:
        return _concept_words("age", word, value)
    if "birth" in found and "year" in found:
        return _concept_words("birth_year", word, value)
    rest = [t for t in tokens if t not in _FILLER and t not in _SPEND and t not in _COUNTS and not t.isdigit()]
    if found & _SPEND or (found - _FILLER == set() and "total" in found):
        if found & _AVERAGE:
            return _concept_words("basket", word, value)
        periods = [t for t in rest if t in _PERIODS]
        category = [t for t in rest if t not in _PERIODS and t not in _AVERAGE]
        words = " ".join([word, *periods, "spend"])
        return f"{words} on {' '.join(category)}" if category else words
    counts = [t for t in tokens if t in _COUNTS]
    if counts:
        qualifier = [t for t in rest if t not in _PERIODS]
        if not qualifier:
            return _concept_words("frequency", word, value)
        many = {"High": "Many", "Low": "Few", "Higher": "More", "Lower": "Fewer"}.get(word, f"{word[:4]} {word[5:]}")
        return f"{many} {' '.join(qualifier)} {_COUNTS[counts[-1]]}"
    return None


def _words(name: str) -> list[str]:
    """Lower-case word parts of a column name: "NumWebPurchases" -> ["num", "web", "purchases"]."""
    return [part.lower() for part in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]
