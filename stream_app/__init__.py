"""stream-app: real-time learner and lead tagging on Kafka.

Layers (imports point downwards only)::

    app/ cli.py serving/api.py          <- wiring: faust, redis, HTTP
    rules/ state/ scoring/ alerts/ sim/  <- pure cores: no faust, redis or prometheus
    events.py contract.py config.py errors.py
"""

__version__ = "0.1.0"
