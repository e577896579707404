"""Embedded services for development and tests: the tansu broker, redis-server, topics.

Each service is a context manager that starts a real process on a free loopback port,
waits until it answers (never a fixed sleep), and stops it on exit.
"""
