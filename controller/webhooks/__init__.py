"""Webhooks: subscriptions (`subscriptions.py`), target checks against SSRF (`targets.py`), and the
controller's delivery worker (`worker.py`), which fans feed events out into stored deliveries and
sends them, signed, with retries and backoff.
"""
