"""The only layer that imports faust: app, topics, tables, agents, timers, web pages."""
