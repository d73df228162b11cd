"""Traffic-engineering classifications shared by the truth, the pipeline and the scorer."""

LOS_THRESHOLDS = ((0.80, "A"), (0.67, "B"), (0.50, "C"), (0.40, "D"), (0.30, "E"))
QUEUING_BELOW_RATIO = 0.25
"""Speed ratio below which traffic is queuing or stationary: a jam."""
JAM_THRESHOLDS = ((0.90, "free"), (0.75, "heavy"), (QUEUING_BELOW_RATIO, "slow"), (0.10, "queuing"))


def level_of_service(speed_ratio: float | None) -> str:
    """Urban level of service by speed ratio (after HCM 7 exhibit 18-1); no vehicles (None) is A."""
    if speed_ratio is None:
        return "A"
    for threshold, los in LOS_THRESHOLDS:
        if speed_ratio > threshold:
            return los
    return "F"


def jam_class(speed_ratio: float | None) -> str:
    """DATEX-style traffic status by speed ratio: free, heavy, slow, queuing or stationary."""
    if speed_ratio is None:
        return "free"
    for threshold, name in JAM_THRESHOLDS:
        if speed_ratio >= threshold:
            return name
    return "stationary"
