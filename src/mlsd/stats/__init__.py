"""Statistics shared by rollouts and monitoring: two-sample distances (PSI, KS, and a KS
test over clustered samples by permuting whole groups), confidence intervals for
proportions (Wilson, Newcombe), sequential tests with always-valid p-values (the mSPRT for
an A/B difference, a one-sided test that a rate exceeds a limit), the sample-size /
duration calculator, and streaming drift detectors (`mlsd.stats.streaming`: Page-Hinkley,
KSWIN, ADWIN, calibrated to a false-alarm rate).

Vectorised with numpy and scipy; the streaming tests speak river's verbs (`update`,
`get`, read-only `rejected`).
"""

from mlsd.stats.distance import KS, ks, psi, quantile_edges
from mlsd.stats.grouped import grouped_ks
from mlsd.stats.msprt import MSPRT, always_valid_pvalues, mean_pvalues, proportion_pvalues
from mlsd.stats.proportion import Interval, newcombe, wilson
from mlsd.stats.rate_test import RateAboveTest, rate_boundary, rate_log_ratios
from mlsd.stats.sample_size import Plan, fixed_horizon_n, plan, z_test_pvalues

__all__ = [
    "KS",
    "MSPRT",
    "Interval",
    "Plan",
    "RateAboveTest",
    "always_valid_pvalues",
    "fixed_horizon_n",
    "grouped_ks",
    "ks",
    "mean_pvalues",
    "newcombe",
    "plan",
    "proportion_pvalues",
    "psi",
    "quantile_edges",
    "rate_boundary",
    "rate_log_ratios",
    "wilson",
    "z_test_pvalues",
]
