"""OULAD real-data evaluation: converter to the event format, batch baseline, report."""
