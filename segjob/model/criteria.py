"""The criteria for k: one entry per criterion says which metric it reads, how it picks k, how it
explains the pick, what it means when it names no k, and how the report and terminal show it.

segjob.model.choose_k applies the rules; the config (--select), the history (`runs show`), the
terminal and the report read the same entries. No numpy here: `segjob runs list` imports it
through the history, and starts without the numeric stack (tests/test_startup.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class Rule(Enum):
    """How a criterion picks k from the values of its metric over the accepted candidates."""

    BEST = "the best value"
    FEWEST_PAYING = "the fewest segments that reach most of the gain (segjob.model.backtest.paying_k)"
    MOST_DETAILED_NEAR_BEST = "the largest k within a tolerance of the best value"
    GAP = "Tibshirani, Walther & Hastie's gap rule"
    KNEE = "the knee of the curve (Kneedle)"


@dataclass(frozen=True)
class Criterion:
    name: str  # the --select value
    metric: str  # the K-sweep metric it reads (segjob.model.choose_k.Metric names)
    label: str  # the metric as the terminal's K sweep names it
    rule: Rule
    # Why this k, formatted with the chosen candidate's metrics (and paying_share for FEWEST_PAYING).
    reason: str
    no_answer: str  # why the criterion may name no k
    fallback: str | None  # the criterion that decides when this one names no k
    higher_is_better: bool = True
    stable_only: bool = False  # considers only the stable candidates (all of them when none is)
    title: str | None = None  # its chart's title in the report; None: no chart of its own

    @property
    def direction(self) -> str:
        """Which way the report's chart of its metric is read."""
        if self.rule is Rule.FEWEST_PAYING:
            return "fewest k with most of the gain"
        return "higher is better" if self.higher_is_better else "lower is better"

    def explain(self, metrics: Mapping[str, float]) -> str:
        return self.reason.format_map(metrics)


SILHOUETTE_GAIN, SILHOUETTE, MACRO_SILHOUETTE, GAP = "silhouette-gain", "silhouette", "macro-silhouette", "gap"
ELBOW, DAVIES_BOULDIN, CALINSKI_HARABASZ, STABILITY = "elbow", "davies-bouldin", "calinski-harabasz", "stability"
NEXT_PERIOD = "next-period"  # purchase histories: a backtest of later behaviour (segjob.model.backtest)

_ALL = (
    Criterion(
        name=NEXT_PERIOD,
        metric="backtest_score",
        label="backtest score",
        rule=Rule.FEWEST_PAYING,
        reason="the fewest segments that reach {paying_share:.0%} of the gain in separating later behaviour"
        " (backtest score {backtest_score:.3f}: share of the variance of log next-period spend explained;"
        " raw spend {backtest_spend_explained:.3f}, purchase-rate spread {backtest_rate_spread:.1%})",
        no_answer="no backtest of later behaviour (only --transactions jobs have one)",
        fallback=SILHOUETTE_GAIN,
        stable_only=True,
        title="Backtest: later spend explained (next-period rule)",
    ),
    Criterion(
        name=SILHOUETTE_GAIN,
        metric="silhouette_gain",
        label="silhouette gain",
        rule=Rule.BEST,
        reason="largest silhouette gain over structureless data ({silhouette_gain:.3f}:"
        " silhouette {silhouette:.3f}, one blob {null_silhouette:.3f})",
        no_answer="the structureless reference could not be measured",
        fallback=SILHOUETTE,
        stable_only=True,
        title="Silhouette gain over one blob (default rule of tables)",
    ),
    Criterion(
        name=SILHOUETTE,
        metric="silhouette",
        label="silhouette",
        rule=Rule.BEST,
        reason="best silhouette ({silhouette:.3f})",
        no_answer="silhouette could not be computed",
        fallback=None,
        title="Silhouette",
    ),
    Criterion(
        name=MACRO_SILHOUETTE,
        metric="macro_silhouette",
        label="macro silhouette",
        rule=Rule.BEST,
        reason="best silhouette averaged over segments ({macro_silhouette:.3f})",
        no_answer="silhouette could not be computed",
        fallback=SILHOUETTE,
    ),
    Criterion(
        name=GAP,
        metric="gap",
        label="gap",
        rule=Rule.GAP,
        reason="gap statistic ({gap:.3f}: first k not beaten by the next beyond its noise)",
        no_answer="no k meets the gap statistic's rule (gap(k) >= gap(k+1) - sd(k+1))",
        fallback=SILHOUETTE,
    ),
    Criterion(
        name=ELBOW,
        metric="inertia",
        label="inertia",
        rule=Rule.KNEE,
        reason="elbow of the inertia curve (Kneedle)",
        no_answer="the inertia curve has no elbow",
        fallback=SILHOUETTE,
        higher_is_better=False,
    ),
    Criterion(
        name=DAVIES_BOULDIN,
        metric="davies_bouldin",
        label="Davies-Bouldin",
        rule=Rule.BEST,
        reason="lowest Davies-Bouldin ({davies_bouldin:.3f})",
        no_answer="Davies-Bouldin could not be computed",
        fallback=SILHOUETTE,
        higher_is_better=False,
        title="Davies-Bouldin",
    ),
    Criterion(
        name=CALINSKI_HARABASZ,
        metric="calinski_harabasz",
        label="Calinski-Harabasz",
        rule=Rule.BEST,
        reason="highest Calinski-Harabasz ({calinski_harabasz:.1f})",
        no_answer="Calinski-Harabasz could not be computed",
        fallback=SILHOUETTE,
        title="Calinski-Harabasz",
    ),
    Criterion(
        name=STABILITY,
        metric="stability",
        label="stability",
        rule=Rule.MOST_DETAILED_NEAR_BEST,
        reason="most detailed stable segmentation (stability {stability:.3f})",
        no_answer="stability could not be measured",
        fallback=SILHOUETTE,
        title="Stability (mean ARI of refits)",
    ),
)
# Every criterion by name, in the order runs list them.
CRITERIA: Mapping[str, Criterion] = MappingProxyType({criterion.name: criterion for criterion in _ALL})
DEFAULT_CRITERION = SILHOUETTE_GAIN  # --transactions jobs default to NEXT_PERIOD (segjob.config)
