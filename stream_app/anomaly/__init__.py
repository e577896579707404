"""Online anomaly detection of business series (pure: no Faust, Redis or Prometheus).

Parts: :mod:`~stream_app.anomaly.transform` (variance-stabilising transforms),
:mod:`~stream_app.anomaly.seasonal` (the robust seasonal baseline, the default detector),
:mod:`~stream_app.anomaly.river_hw` (River Holt-Winters, the measured alternative),
:mod:`~stream_app.anomaly.alarm` (CUSUM + spike + hysteresis),
:mod:`~stream_app.anomaly.monitor` (one detector and alarm per series -> alert records),
:mod:`~stream_app.anomaly.synthetic` and :mod:`~stream_app.anomaly.evaluate` (measurement).

>>> from stream_app.anomaly import AnomalyMonitor
>>> AnomalyMonitor().anomalous()
[]
"""

from stream_app.anomaly.alarm import CusumAlarm
from stream_app.anomaly.base import Detector, Verdict
from stream_app.anomaly.config import AnomalyConfig, load_anomaly_config
from stream_app.anomaly.monitor import AnomalyMonitor, Observation
from stream_app.anomaly.seasonal import SeasonalDetector

__all__ = ["AnomalyConfig", "AnomalyMonitor", "CusumAlarm", "Detector", "Observation",
           "SeasonalDetector", "Verdict", "load_anomaly_config"]
