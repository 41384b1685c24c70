"""Change notifications: webhook subscriptions, their signed deliveries, and the logic they share.

The change log is the outbox: after each provider's commit, outbox.enqueue_deliveries plans the
new changes into delivery rows (one per subscription and batch of at most 100 matching changes)
and sends one `deliver_changes` message per row; delivery.deliver makes one signed attempt.
Everything here takes its resources explicitly.
"""
