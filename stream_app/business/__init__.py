"""Business series from events: windowed funnel counts, revenue and rates (pure).

>>> from stream_app.business import BusinessAggregator, load_business_spec
>>> BusinessAggregator(load_business_spec()).late
0
"""

from stream_app.business.aggregator import BusinessAggregator
from stream_app.business.merge import Merger
from stream_app.business.series import ALL, SeriesKey, SeriesPoint, merge_points
from stream_app.business.spec import BusinessSpec, load_business_spec

__all__ = ["ALL", "BusinessAggregator", "BusinessSpec", "Merger", "SeriesKey", "SeriesPoint",
           "load_business_spec", "merge_points"]
