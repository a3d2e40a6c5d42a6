"""The study's statistics over seeds: mean and sample standard deviation, Student's t quantile for any degrees of
freedom, and the 95% confidence interval of a mean (a paired gap is the mean of per-seed differences).

Python 3 standard library only: the t quantile inverts the regularized incomplete beta function (continued
fraction) by bisection, exact to about 1e-10, rather than a table that stops at a few seeds.
"""
import math


def mean_std(xs):
    """(mean, sample standard deviation) of xs; sd 0 for one value, (None, None) for none."""
    n = len(xs)
    if n == 0:
        return None, None
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return m, sd


def _beta_cf(a, b, x):
    """The continued fraction of I_x(a, b) (modified Lentz), which converges fast for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    # The number of terms needed grows like sqrt(a): enough for millions of degrees of freedom.
    for m in range(1, 100000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a, b, x):
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b  # I_x(a, b) = 1 - I_{1-x}(b, a)


def t_two_sided(t, df):
    """P(|T| > t) for Student's t with df degrees of freedom (t >= 0)."""
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(level, df):
    """The two-sided Student t quantile: the t with P(|T| <= t) = level, e.g. 12.7062 for level 0.95 and df 1."""
    if not 0.0 < level < 1.0 or df <= 0:
        raise ValueError("t_quantile needs 0 < level < 1 and df > 0, got %r, %r" % (level, df))
    # Bisection on x = df / (df + t^2), where the tail I_x(df/2, 1/2) rises from 0 to 1: no derivative and no
    # starting guess to get wrong, and 200 halvings reach the precision of a double.
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if incomplete_beta(df / 2.0, 0.5, mid) < 1.0 - level:
            lo = mid
        else:
            hi = mid
    x = 0.5 * (lo + hi)
    return math.sqrt(df * (1.0 - x) / x)


def mean_ci(xs, level=0.95):
    """(mean, sd, half-width) of the confidence interval of the mean of xs: t(level, n - 1) * sd / sqrt(n).
    The half-width is None for fewer than two values (no spread to estimate)."""
    m, sd = mean_std(xs)
    if m is None or len(xs) < 2:
        return m, sd, None
    return m, sd, t_quantile(level, len(xs) - 1) * sd / math.sqrt(len(xs))
